#include "services/trainer/core/rater_items.h"

#include <fmt/format.h>

#include <span>

#include "services/trainer/core/png.h"

namespace greenloop::trainer {

v1::ItemInput ItemFor(const LoadedDataset& dataset, std::size_t position,
                      std::int64_t given_label) {
  v1::ItemInput item;
  item.mutable_sample()->set_dataset(dataset.dataset);
  item.mutable_sample()->set_index(dataset.train.refs[position]);
  if (dataset.image_pixels() > 0) {
    const auto n = static_cast<std::size_t>(dataset.image_pixels());
    item.mutable_payload()->set_png(EncodeGreyscalePng(
        std::span<const std::uint8_t>(dataset.train.pixels.data() + position * n, n),
        dataset.image_rows, dataset.image_cols));
  } else {
    item.mutable_payload()->set_text(dataset.train_display_text[position]);
  }
  item.set_given_label(static_cast<std::uint32_t>(given_label));
  return item;
}

v1::CampaignSpec LabelCampaignFor(const LoadedDataset& dataset, const std::string& run_id,
                                  const v1::FeedbackTarget& target) {
  v1::CampaignSpec spec;
  spec.set_display_name(fmt::format("{}: check labels", run_id));
  spec.set_run_id(run_id);
  spec.set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
  spec.set_ratings_per_item(target.ratings_per_item());
  spec.set_agreeing_ratings(target.agreeing_ratings());
  spec.set_gold_share(target.gold_share());
  spec.set_show_model_prediction(target.show_model_prediction());
  for (int i = 0; i < dataset.num_classes(); ++i) {
    v1::Label* label = spec.add_labels();
    label->set_name(dataset.label_names[static_cast<std::size_t>(i)]);
    label->set_display_name(dataset.label_display_names[static_cast<std::size_t>(i)]);
  }
  return spec;
}

v1::CampaignSpec RuleCampaignFor(const LoadedDataset& dataset, const std::string& run_id,
                                 const v1::FeedbackTarget& target) {
  v1::CampaignSpec spec = LabelCampaignFor(dataset, run_id, target);
  spec.set_display_name(fmt::format("{}: what to ignore", run_id));
  spec.set_question_kind(v1::QUESTION_KIND_FEATURE_RULE);
  spec.set_show_model_prediction(false);
  spec.set_gold_share(0);
  if (!dataset.vocabulary.empty()) {
    spec.mutable_feature_grid()->set_rows(1);
    spec.mutable_feature_grid()->set_cols(static_cast<std::uint32_t>(kRuleWords));
    spec.set_instructions(
        "The words that make the model think a mail is of this class, strongest first. Tap the "
        "words that say nothing about whether a mail is of this class, words the model should "
        "ignore in every such mail, then confirm. Skip when you cannot tell.");
    return spec;
  }
  spec.mutable_feature_grid()->set_rows(static_cast<std::uint32_t>(dataset.image_rows / 4));
  spec.mutable_feature_grid()->set_cols(static_cast<std::uint32_t>(dataset.image_cols / 4));
  spec.mutable_feature_grid()->set_evidence_panel(true);
  spec.set_instructions(
      "Left: the average image of the class. Right: where the model looks (bright: a lot). Tap "
      "the cells of the left picture that say nothing about what the item is, where the model "
      "should not look for every item of this class, then confirm. Skip when you cannot tell.");
  return spec;
}

v1::CampaignSpec MaskCampaignFor(const LoadedDataset& dataset, const std::string& run_id,
                                 const v1::FeedbackTarget& target) {
  v1::CampaignSpec spec = RuleCampaignFor(dataset, run_id, target);
  spec.set_display_name(fmt::format("{}: what to ignore in this item", run_id));
  spec.set_question_kind(v1::QUESTION_KIND_FEATURE_MASK);
  spec.set_instructions(
      dataset.vocabulary.empty()
          ? "Left: the item. Right: where the model looks (bright: a lot). Tap the cells of the "
            "left picture that say nothing about what the item is, where the model should not "
            "look, then confirm (none is a valid answer). Skip when you cannot tell."
          : "The words of this mail that make the model think it is of its class, strongest "
            "first. Tap the words that say nothing about whether it is, words the model should "
            "ignore, then confirm (none is a valid answer). Skip when you cannot tell.");
  return spec;
}

v1::ItemInput MaskItemFor(const LoadedDataset& dataset, std::size_t position,
                          std::int64_t given_label, std::span<const std::uint8_t> evidence) {
  v1::ItemInput item = ItemFor(dataset, position, given_label);
  item.mutable_payload()->set_png(
      EncodeGreyscalePng(evidence, dataset.image_rows, 2 * dataset.image_cols, 6));
  return item;
}

v1::ItemInput MaskItemForWords(const LoadedDataset& dataset, std::size_t position,
                               std::int64_t given_label, const std::vector<std::string>& words) {
  v1::ItemInput item = ItemFor(dataset, position, given_label);
  std::string text;
  for (const std::string& w : words) text += w + "\n";
  item.mutable_payload()->set_text(text);
  return item;
}

v1::ItemInput RuleItemFor(const LoadedDataset& dataset, std::int64_t label,
                          std::span<const std::uint8_t> evidence) {
  v1::ItemInput item;
  item.mutable_sample()->set_dataset(dataset.dataset);
  item.mutable_sample()->set_index(static_cast<std::uint64_t>(label));
  item.mutable_payload()->set_png(
      EncodeGreyscalePng(evidence, dataset.image_rows, 2 * dataset.image_cols, 6));
  item.set_given_label(static_cast<std::uint32_t>(label));
  return item;
}

v1::ItemInput RuleItemForWords(const LoadedDataset& dataset, std::int64_t label,
                               const std::vector<std::string>& words) {
  v1::ItemInput item;
  item.mutable_sample()->set_dataset(dataset.dataset);
  item.mutable_sample()->set_index(static_cast<std::uint64_t>(label));
  std::string text;
  for (const std::string& w : words) text += w + "\n";
  item.mutable_payload()->set_text(text);
  item.set_given_label(static_cast<std::uint32_t>(label));
  return item;
}

}  // namespace greenloop::trainer
