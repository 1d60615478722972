/*
 * {{ cookiecutter.formal_name }}'s launcher: runs the bundled app with Debian's own Python
 * (the package depends on python{{ cookiecutter.python_version }}-minimal), in isolated mode so the
 * user's PYTHONPATH and site-packages cannot change what runs. Arguments pass through.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python{{ cookiecutter.python_version }}"
#define BOOT "/usr/lib/{{ cookiecutter.app_name }}/boot.py"

int main(int argc, char *argv[])
{
    char **args = calloc((size_t)argc + 3, sizeof(char *));
    int n = 0;

    if (args == NULL) {
        perror("{{ cookiecutter.app_name }}");
        return 127;
    }
    args[n++] = PYTHON;
    args[n++] = "-I";
    args[n++] = BOOT;
    for (int i = 1; i < argc; i++) {
        args[n++] = argv[i];
    }
    args[n] = NULL;
    execv(PYTHON, args);
    fprintf(stderr, "{{ cookiecutter.app_name }}: cannot run %s: %s\n", PYTHON, strerror(errno));
    return 127;
}
