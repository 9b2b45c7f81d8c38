"""bulkfm.report"""
