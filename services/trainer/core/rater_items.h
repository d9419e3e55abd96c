// What raters are shown for a training sample: the item the trainer enqueues.
//
// ItemFor() builds the ItemInput of one training sample: its SampleRef, its display payload (a
// greyscale PNG for images, the mail's text for SpamAssassin) and the label training uses now.
// The caller adds the model's prediction and the priority it knows. LabelCampaignFor() is the
// campaign a run's label questions go to: the one place a run's campaign is described.
//
// Thread-safety: a pure function of the dataset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "greenloop/v1/feedback.pb.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"

namespace greenloop::trainer {

// The item of training sample `position` of `dataset`, whose current label is `given_label`.
// `position` must be inside the training split.
v1::ItemInput ItemFor(const LoadedDataset& dataset, std::size_t position, std::int64_t given_label);

// The label-choice campaign of run `run_id`: its name, the dataset's classes as the labels, and
// k, gold share and display from `target`.
v1::CampaignSpec LabelCampaignFor(const LoadedDataset& dataset, const std::string& run_id,
                                  const v1::FeedbackTarget& target);

}  // namespace greenloop::trainer
