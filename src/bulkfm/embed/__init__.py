"""bulkfm.embed"""
