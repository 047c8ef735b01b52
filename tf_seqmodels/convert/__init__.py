"""Weight importers from reference formats, each with an explicit name map."""

from tf_seqmodels.convert.enformer_checkpoint import (WeightImportError, load_enformer,
                                                      load_reference_weights,
                                                      read_checkpoint_arrays,
                                                      reference_layout,
                                                      reference_variable_map,
                                                      save_reference_checkpoint)

# Importing each importer module registers it for `import_reference_weights`.
from tf_seqmodels.convert import torch_state_dict  # noqa: F401  (DREAM models)
from tf_seqmodels.convert import keras_h5  # noqa: F401  (BPNet / ChromBPNet .h5)
from tf_seqmodels.convert import chromoformer_state_dict  # noqa: F401  (dohlee/chromoformer)
from tf_seqmodels.convert.weights import (import_reference_weights, load_checkpoint,
                                          register_reference_importer, save_checkpoint)

__all__ = ["import_reference_weights", "load_checkpoint", "register_reference_importer",
           "save_checkpoint", "WeightImportError", "load_enformer", "load_reference_weights", "read_checkpoint_arrays",
           "reference_layout", "reference_variable_map", "save_reference_checkpoint"]
