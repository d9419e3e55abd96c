-- Feature questions (QUESTION_KIND_FEATURE_MASK and QUESTION_KIND_FEATURE_RULE): the cells of
-- every mask answer. The rating's answer column holds the mask's category, a hash of its sorted
-- cells (services/feedback/core/feature_masks.h), so that idempotent resubmits, early agreement
-- and gold answers compare masks exactly; the consensus reads the cells from here.
CREATE TABLE feedback_rating_masks (
  rating_id bigint PRIMARY KEY REFERENCES feedback_ratings ON DELETE CASCADE,
  cells     smallint[] NOT NULL
);
