"""Inputs into chunks, and chunks back into records.

- ``plan``: files, folders and globs named on the command line into one stream of files,
  each identified by its bytes, and the packing of their records into chunks;
- ``scan``: validate one file and cut it into byte ranges of records;
- ``spool``: standard input and gzip files copied to disk under their content hash;
- ``http``: URL inputs, their credentials, and fetching their pages into the spool;
- ``read``: a chunk's byte ranges back into records.
"""
