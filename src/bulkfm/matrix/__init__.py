"""bulkfm.matrix"""
