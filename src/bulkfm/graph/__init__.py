"""bulkfm.graph"""
