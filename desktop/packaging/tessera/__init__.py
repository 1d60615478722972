"""The .deb's entry module (Briefcase names the app's module after the app): runs desktop.launcher."""
