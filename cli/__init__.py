"""The ``spectra`` command-line front end (installed as the package ``spectra_cli``)."""
