"""bulkfm.model"""
