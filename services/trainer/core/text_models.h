// The text models of the zoo (ModelKind in trainer.proto gives their layers and defaults): the
// bag of words, whose token contributions are exact, and a small Transformer encoder over token
// ids. Both take a batch as its token ids [T] and bag offsets [B] (ModelInput).
//
//   std::shared_ptr<ClassifierImpl> m = MakeTextModel(v1::MODEL_KIND_TRANSFORMER, vocab, 2, 64, 2);
//   LayerTally layers = TextModelLayers(v1::MODEL_KIND_TRANSFORMER, vocab, 2, 64, 2, mean,
//   dataset.train);
//
// This header includes LibTorch.
//
// Thread-safety: a model is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>

#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/models.h"

namespace greenloop::trainer {

// The Transformer reads a start token and at most this many tokens less one of each mail.
inline constexpr std::int64_t kTransformerTokens = 256;

// Attention heads of the Transformer: its width must be a multiple of this.
inline constexpr std::int64_t kTransformerHeads = 4;

// The text model of `kind` (MODEL_KIND_BAG_OF_WORDS or MODEL_KIND_TRANSFORMER) for a vocabulary
// of `vocabulary` token ids and `classes` classes, of `width` and `depth` (resolved and
// validated: ValidateModelShape).
std::shared_ptr<ClassifierImpl> MakeTextModel(v1::ModelKind kind, std::int64_t vocabulary,
                                              int classes, int width, int depth);

// The layers of the text model of `kind` and their MACs for the mean sample: the bag adds one
// width-vector per token of a sample of `mean_tokens`; the Transformer's attention grows with the
// square of a sample's length, so its MACs are averaged over the samples of `split` as they are
// cut to kTransformerTokens.
LayerTally TextModelLayers(v1::ModelKind kind, std::int64_t vocabulary, int classes, int width,
                           int depth, double mean_tokens, const Split& split);

}  // namespace greenloop::trainer
