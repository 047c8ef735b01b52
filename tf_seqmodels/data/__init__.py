"""Sequence encoding and (in later modules) genomics data pipelines."""

from tf_seqmodels.data.encoding import (ALPHABET, SequenceError, one_hot_decode, one_hot_encode,
                                        random_shift, reverse_complement,
                                        reverse_complement_one_hot, sequence_to_indices,
                                        shift_sequence)
from tf_seqmodels.data.chrombpnet import (ChromBPNetData, ChromBPNetDataConfig, Fold, Regions,
                                          RegionSet, TrainingSampler, make_fold,
                                          prepare_bias_data, prepare_chrombpnet_data, read_fold,
                                          read_narrowpeak, write_narrowpeak)
from tf_seqmodels.data.genome import BigWigSignal, Genome, GenomeError, read_chrom_sizes
from tf_seqmodels.data.dream import (ChallengeSubsets, DataFormatError, SequenceTable,
                                    dream_dataset, dream_one_hot, dream_test_inputs,
                                    load_challenge_subsets, load_plasmid,
                                    load_public_leaderboard_ids, pad_with_plasmid,
                                    predict_rc_average, read_deepstarr_table, read_dream_table,
                                    read_lentimpra_table, regression_dataset, soft_labels)

__all__ = ["ALPHABET", "SequenceError", "one_hot_decode", "one_hot_encode", "random_shift",
           "reverse_complement", "reverse_complement_one_hot", "sequence_to_indices", "shift_sequence",
           "ChallengeSubsets", "DataFormatError", "SequenceTable", "dream_dataset", "dream_one_hot",
           "dream_test_inputs", "load_challenge_subsets", "load_plasmid",
           "load_public_leaderboard_ids", "pad_with_plasmid", "predict_rc_average",
           "read_deepstarr_table", "read_dream_table", "read_lentimpra_table",
           "regression_dataset", "soft_labels"]
__all__ += ["ChromBPNetData", "ChromBPNetDataConfig", "Fold", "Regions", "RegionSet",
            "TrainingSampler", "make_fold", "prepare_bias_data", "prepare_chrombpnet_data",
            "read_fold", "read_narrowpeak", "write_narrowpeak", "BigWigSignal", "Genome",
            "GenomeError", "read_chrom_sizes"]

from tf_seqmodels.data.intervals import (DataSplits, IntervalError, check_regions,  # noqa: E402
                                         read_bed, split_regions, table_splits, tile_regions,
                                         write_bed)
from tf_seqmodels.data.tracks import (TrackDataConfig, TrackSource, TrackSpec,  # noqa: E402
                                      TrackWindows, load_windows, read_targets_table,
                                      track_splits, write_targets_table)
from tf_seqmodels.data.tfrecords import (basenji_dataset, basenji_splits,  # noqa: E402
                                         read_statistics, write_basenji_tfrecords)
from tf_seqmodels.data.synthetic import SyntheticConfig, generate_synthetic_dataset  # noqa: E402

__all__ += ["DataSplits", "IntervalError", "check_regions", "read_bed", "split_regions",
            "table_splits", "tile_regions", "write_bed", "TrackDataConfig", "TrackSource",
            "TrackSpec", "TrackWindows", "load_windows", "read_targets_table", "track_splits",
            "write_targets_table", "basenji_dataset", "basenji_splits", "read_statistics",
            "write_basenji_tfrecords", "SyntheticConfig", "generate_synthetic_dataset"]
