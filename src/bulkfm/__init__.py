"""bulkfm: public human bulk RNA-seq to a transcriptome foundation model.

Each subpackage holds one workflow stage's logic (the rule file in ``workflow/rules`` of the
same name calls it through the ``bulkfm`` command).
"""

__version__ = "0.1.0"
