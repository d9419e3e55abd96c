// Feature questions on the rater page (QUESTION_KIND_FEATURE_MASK, QUESTION_KIND_FEATURE_RULE):
// a grid of toggle buttons over the image, one per cell of the campaign's feature grid. Tap (or
// focus and press Space) to mark a cell the model should ignore; "c" confirms. A rule's picture,
// and an item's whose grid says evidencePanel, is two panels wide (the item or the class's mean
// image, then where the model looks): the grid covers the left one. A text item's payload is a list of words, one per line (e.g. the words the model weighs
// most for a class): each word is a toggle button, cell i the i-th word (wordGrid). Loaded before
// app.js, which calls featureGrid() or wordGrid() from show().

const FEATURE_KINDS = ["QUESTION_KIND_FEATURE_MASK", "QUESTION_KIND_FEATURE_RULE"];

function isFeatureQuestion(q) {
  return FEATURE_KINDS.includes(q.kind);
}

// Whether the picture of `q` is two panels wide, the cells covering the left one.
function twoPanels(q) {
  return q.kind === "QUESTION_KIND_FEATURE_RULE" || Boolean(q.featureGrid && q.featureGrid.evidencePanel);
}

// Lays the grid of `q` over `img` (inside `payload`) and returns { cells() } → the marked cells.
function featureGrid(q, payload, img) {
  const rows = (q.featureGrid && q.featureGrid.rows) || 1;
  const cols = (q.featureGrid && q.featureGrid.cols) || 1;
  const frame = document.createElement("div");
  frame.className = "cells-frame";
  payload.replaceChildren(frame);
  frame.appendChild(img);
  const grid = document.createElement("div");
  grid.className = "cells";
  grid.setAttribute("role", "group");
  grid.setAttribute("aria-label", "cells to ignore");
  grid.style.gridTemplateColumns = `repeat(${cols}, 1fr)`;
  grid.style.gridTemplateRows = `repeat(${rows}, 1fr)`;
  grid.style.width = twoPanels(q) ? "50%" : "100%";
  const marked = new Set();
  for (let cell = 0; cell < rows * cols; ++cell) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "cell";
    b.dataset.cell = String(cell);
    b.setAttribute("aria-pressed", "false");
    b.setAttribute("aria-label", `row ${Math.floor(cell / cols) + 1}, column ${(cell % cols) + 1}`);
    b.addEventListener("click", () => {
      if (marked.has(cell)) marked.delete(cell);
      else marked.add(cell);
      b.setAttribute("aria-pressed", String(marked.has(cell)));
    });
    grid.appendChild(b);
  }
  frame.appendChild(grid);
  return { cells: () => [...marked].sort((a, b) => a - b) };
}

// Lays the words of `text` (one per line) into `payload` as toggle buttons and returns
// { cells() } → the positions of the marked words.
function wordGrid(text, payload) {
  const words = text.split("\n").filter((w) => w.length > 0);
  const group = document.createElement("div");
  group.className = "words";
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "words to ignore");
  payload.replaceChildren(group);
  const marked = new Set();
  words.forEach((word, cell) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "word";
    b.dataset.cell = String(cell);
    b.textContent = word;
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => {
      if (marked.has(cell)) marked.delete(cell);
      else marked.add(cell);
      b.setAttribute("aria-pressed", String(marked.has(cell)));
    });
    group.appendChild(b);
  });
  return { cells: () => [...marked].sort((a, b) => a - b) };
}

// The one answer a feature question has: confirm the marked cells. A rule needs one cell at least.
function featureChoices(q, grid) {
  return [{
    key: "c",
    text: "Confirm",
    answer: () => {
      const cells = grid.cells();
      if (!cells.length && q.kind === "QUESTION_KIND_FEATURE_RULE") {
        say("Tap at least one cell or word the model should ignore, or skip.");
        return null;
      }
      return { featureMask: { irrelevantCells: cells } };
    },
  }];
}
