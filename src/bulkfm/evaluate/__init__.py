"""bulkfm.evaluate"""
