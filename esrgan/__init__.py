"""The ``esrgan`` command line: one entry point whose subcommands live with the packages they drive."""
