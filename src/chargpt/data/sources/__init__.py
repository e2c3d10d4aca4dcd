"""Where text comes from: a file, a directory, a glob, or a Hugging Face dataset split.

Each source is a list of Parts (parts.py: a file, or a dataset split), streamed in chunks so that no
whole text is held in memory. Parts are joined in order with a separator into one id stream (see
encoding.py); their identities (path and sha256) make the corpus fingerprint.

  paths.py        a path setting as typed: `~` and environment variables expanded, a glob's folders
  parts.py        Part, and the one sha256 of a corpus's parts
  text_files.py   the files a path setting names (a file, a folder, a glob), checked to be text
  hf_datasets.py  a Hugging Face dataset split (saved to disk, on the hub, or a builder's files)
"""
