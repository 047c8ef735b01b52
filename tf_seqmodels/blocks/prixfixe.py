"""Prix Fixe blocks of the DREAM models (Rafi et al. 2024; de-Boer-Lab
random-promoter-dream-challenge-2022, commit f7b2e19) that are not LegNet / Proformer parts.

    MultiKernelConv  BHI first block (and the conv stage of the BHI core)
    BHICore          Bi-LSTM -> MultiKernelConv -> Dropout
    SoftBinHead      Autosome final block: 18 expression bins, expected bin
    RegressionHead   benchmark final block (DeepSTARR / lentiMPRA): one scalar per task

The Autosome first block is blocks.legnet.ConvBatchNormAct, its core blocks.legnet.LegNetCore,
the Unlock_DNA core blocks.conformer.Proformer. models/dream.py maps block configs onto these.
Attribute names are the PyTorch state-dict map's (convert/torch_state_dict.py): keep them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import sonnet as snt
import tensorflow as tf

from tf_seqmodels.blocks.convolution import Conv1D
from tf_seqmodels.blocks.legnet import autosome_conv_init, autosome_linear_init
from tf_seqmodels.blocks.recurrent import BidirectionalLSTM
from tf_seqmodels.blocks.torch_compat import dropout, torch_uniform


class MultiKernelConv(snt.Module):
  """BHI conv block: for each kernel k, Conv1D(out / n, k, 'same', bias) -> ReLU -> Dropout;
  outputs concatenated in kernel order. [B, L, C_in] -> [B, L, out_channels].

  The BHI first block, and the conv stage of the BHI core. PyTorch default init.
  """

  def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int] = (9, 15),
               dropout_rate: float = 0.2, name: Optional[str] = None):
    super().__init__(name=name)
    if out_channels % len(kernel_sizes):
      raise ValueError(f"out_channels {out_channels} must be divisible by the number of kernels "
                       f"{len(kernel_sizes)}")
    each = out_channels // len(kernel_sizes)
    self.dropout_rate = dropout_rate
    self.convs = [
        Conv1D(each, k, padding="SAME", w_init=torch_uniform(in_channels * k),
               b_init=torch_uniform(in_channels * k), name=f"conv_{i}")
        for i, k in enumerate(kernel_sizes)
    ]

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    return tf.concat([dropout(tf.nn.relu(conv(inputs)), self.dropout_rate, is_training)
                      for conv in self.convs], axis=-1)


class BHICore(snt.Module):
  """Bi-LSTM (lstm_hidden_size per direction) -> MultiKernelConv -> Dropout.
  [B, L, C_in] -> [B, L, out_channels].

  At C_in = 320 (DREAM-RNN) it has 4,101,440 parameters (LSTM 1,643,520).
  """

  def __init__(self, in_channels: int, lstm_hidden_size: int = 320, out_channels: int = 320,
               kernel_sizes: Sequence[int] = (9, 15), conv_dropout_rate: float = 0.2,
               dropout_rate: float = 0.5, name: Optional[str] = None):
    super().__init__(name=name)
    self.dropout_rate = dropout_rate
    self.lstm = BidirectionalLSTM(in_channels, lstm_hidden_size, name="lstm")
    self.convs = MultiKernelConv(2 * lstm_hidden_size, out_channels, kernel_sizes,
                                 conv_dropout_rate, name="convs")

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    x = self.convs(self.lstm(inputs), is_training=is_training)
    return dropout(x, self.dropout_rate, is_training)


def soft_bin_expectation(bin_logits: tf.Tensor) -> tf.Tensor:
  """sum_k softmax(bin_logits)_k * k, the expected bin: [B, K] -> [B]."""
  bins = tf.range(bin_logits.shape[-1], dtype=bin_logits.dtype)
  return tf.reduce_sum(tf.nn.softmax(bin_logits, axis=-1) * bins, axis=-1)


class SoftBinHead(snt.Module):
  """Autosome final block. [B, L, C] -> {"expression": [B], "bin_logits": [B, num_bins]}."""

  def __init__(self, num_bins: int = 18, name: Optional[str] = None):
    super().__init__(name=name)
    self.num_bins = num_bins
    self.mapper = Conv1D(num_bins, 1, w_init=autosome_conv_init(1, num_bins), name="mapper")

  def __call__(self, embedding: tf.Tensor) -> dict[str, tf.Tensor]:
    logits = tf.reduce_mean(self.mapper(embedding), axis=1)  # mapper, then average-pool over L
    return {"expression": soft_bin_expectation(logits), "bin_logits": logits}


class RegressionHead(snt.Module):
  """Benchmark final block: per task 1x1 conv (hidden_channels) -> mean over L -> Linear(1).

  Shapes: [B, L, C] -> {task: [B] for each task name}.
  """

  def __init__(self, task_names: Sequence[str] = ("dev", "hk"), hidden_channels: int = 256,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.task_names = tuple(task_names)
    self.mappers = [Conv1D(hidden_channels, 1, w_init=autosome_conv_init(1, hidden_channels),
                           name=f"mapper_{task}") for task in self.task_names]
    self.linears = [snt.Linear(1, w_init=autosome_linear_init(), name=f"linear_{task}")
                    for task in self.task_names]

  def __call__(self, embedding: tf.Tensor) -> dict[str, tf.Tensor]:
    return {task: linear(tf.reduce_mean(mapper(embedding), axis=1))[:, 0]
            for task, mapper, linear in zip(self.task_names, self.mappers, self.linears)}
