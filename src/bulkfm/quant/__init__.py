"""bulkfm.quant"""
