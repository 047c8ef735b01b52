"""Prediction for evaluation under a mirrored strategy (2 logical CPUs, fresh process): the
same outputs, in the same order, as on one device, including a partial last batch."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    from tf_seqmodels.training.strategy import StrategyConfig, make_strategy
    info = make_strategy(StrategyConfig(kind="mirrored", cpu_devices=2))
    assert info.num_replicas == 2, info.num_replicas
    from tf_seqmodels.evaluation.augmentation import TestTimeAugmentation, augmented_predict
    from tf_seqmodels.evaluation.predict import predict_dataset

    class Model:
      takes_dna_sequence, input_channels, position_axes = True, 4, {"tracks": 1}
      def __call__(self, x, is_training):
        return {"tracks": tf.cumsum(x[..., :2], axis=1), "total": tf.reduce_sum(x[..., 3], 1)}

    x = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (7, 12))]
    data = tf.data.Dataset.from_tensor_slices((x, {"id": np.arange(7)})).batch(4)
    model, tta = Model(), TestTimeAugmentation(shifts=(0, 1))
    predict = lambda inputs: augmented_predict(model, inputs, tta, {})
    single = predict_dataset(model, data, predict=predict, progress=False)
    mirrored = predict_dataset(model, data, strategy=info, predict=predict, progress=False)
    assert list(mirrored.targets["id"]) == list(range(7)), mirrored.targets["id"]
    for head in ("tracks", "total"):
      np.testing.assert_allclose(mirrored.outputs[head], single.outputs[head], atol=1e-6)
    print("OK", mirrored.outputs["tracks"].shape)
""")


def test_mirrored_prediction_matches_one_device():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "OK (7, 12, 2)" in result.stdout
