"""bulkfm.train"""
