"""bulkfm.sra: public accessions -> run metadata -> FASTQ.

- :mod:`~bulkfm.sra.accessions`: classify/validate accessions (before any URL, path or command)
- :mod:`~bulkfm.sra.resolve`: ``resolve(accessions) -> DataFrame`` (one row per run; NCBI via
  pysradb, ENA fallback; human RNA-seq filter as ``excluded_reason``), ``write_metadata``
- :mod:`~bulkfm.sra.ncbi`, :mod:`~bulkfm.sra.ena`: the two metadata sources
- :mod:`~bulkfm.sra.filters`: ``RunFilter`` (taxon, library strategy/source)
- :mod:`~bulkfm.sra.download`: ``fetch_fastq(run, dest_dir)`` (ENA md5/resume or sra-tools)
- :mod:`~bulkfm.sra.fastq`: ``check_fastq(paths, sample)`` before quantification
- :mod:`~bulkfm.sra.net`: ``Endpoints``, ``RetryPolicy``, ``NetworkError``
- :mod:`~bulkfm.sra.config`: the ``sra:`` config block
"""
