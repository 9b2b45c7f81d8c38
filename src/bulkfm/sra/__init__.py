"""bulkfm.sra"""
