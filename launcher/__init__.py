"""The single-file build's launcher (issue 24): the small program `dist/sinkvis` really is.

PyInstaller's onefile mode unpacks everything it carries on every start (~1.1 GB for SinkVis,
~10 s). So build.spec builds the app as a folder (onedir), zips it, and stores the zip inside a
small onefile launcher as an entry PyInstaller's bootloader does not unpack. The launcher unpacks
the zip once into a folder named by its hash under the user cache (install.py) and then runs the
app from there (start.py); later starts only check that folder and start the app.
Standard library only: it runs before anything else is unpacked.
"""
