"""`dos data prepare <dataset> RAW OUT`: convert an official indoor download, once, into Pointcept's layout.

Why a one-time conversion rather than a reader of the raw files:

- Training reads every room hundreds of times (50-800 epochs). Raw ScanNet costs a PLY parse, two JSON
  files and a mesh-normal computation per read; raw S3DIS is about 12 GB of text that parses at tens of
  MB/s. The .npy layout loads in milliseconds, memory-mapped.
- The prepared layout is exactly what the existing `scannet`, `scannet200` and `s3dis` readers, the
  label-efficiency subsets (`dos data subsets`) and the workflow's `paper` scale already read, and what
  Pointcept writes and distributes, so prepared data and Pointcept's own preprocessed downloads are
  interchangeable (and a Pointcept/Sonata checkpoint sees the same inputs).
- Conversion is where the raw formats' known problems are handled once and reported with the file and
  line (S3DIS's malformed line), instead of on every epoch.

Each room is written into OUT/.partial/<room>/ and renamed into place when complete, so an interrupted
run leaves no half-written room in a split, and a rerun skips the rooms already there.
"""
