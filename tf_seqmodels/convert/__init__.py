"""Weight importers from reference formats, each with an explicit name map."""

from tf_seqmodels.convert.enformer_checkpoint import (WeightImportError, load_enformer,
                                                      load_reference_weights,
                                                      read_checkpoint_arrays,
                                                      reference_layout,
                                                      reference_variable_map,
                                                      save_reference_checkpoint)

__all__ = ["WeightImportError", "load_enformer", "load_reference_weights", "read_checkpoint_arrays",
           "reference_layout", "reference_variable_map", "save_reference_checkpoint"]
