"""bulkfm.metadata"""
