"""The desktop edition: launcher, window, port file, background jobs, LAN sync hub, backups, packaging."""
