// The rater page: a token login, then lease → show → answer with one key → submit, over the
// feedback service's JSON API (/api/v1/<Rpc>, the same messages as gRPC). No framework.
"use strict";

const $ = (id) => document.getElementById(id);
// Items leased ahead of the one on screen: the next one shows at once after an answer (no round
// trip on a slow phone connection), and one Lease serves several items.
const PREFETCH = 3;
const state = { token: "", lease: null, queue: [], shownAt: 0, busy: false, retryTimer: 0 };

async function call(rpc, body) {
  const res = await fetch("/api/v1/" + rpc, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + state.token },
    body: JSON.stringify(body || {}),
  });
  const json = await res.json().catch(() => ({ code: "UNKNOWN", message: res.statusText }));
  if (!res.ok) {
    const err = new Error(json.message || res.statusText);
    err.code = json.code;
    err.status = res.status;
    throw err;
  }
  return json;
}

function say(text, ok) {
  $("status").textContent = text || "";
  $("status").className = ok ? "ok" : "";
}

async function signIn(token) {
  state.token = token.trim();
  try {
    const me = await call("WhoAmI");
    if (me.info.role !== "ROLE_RATER") {
      throw new Error("this token has role " + me.info.role + "; rating needs a rater token");
    }
    localStorage.setItem("greenloop.token", state.token);
    $("who").textContent = me.info.name;
    $("login").hidden = true;
    $("me").hidden = false;
    $("rate").hidden = false;
    say("");
    await loadCampaigns();
    await refreshStats();
    await next();
  } catch (e) {
    localStorage.removeItem("greenloop.token");
    say("Sign-in failed: " + e.message);
  }
}

async function loadCampaigns() {
  const list = await call("ListCampaigns", { page: { pageSize: 100 } });
  const select = $("campaign");
  select.innerHTML = "";
  const any = document.createElement("option");
  any.value = "";
  any.textContent = "Any open campaign";
  select.appendChild(any);
  for (const c of list.campaigns || []) {
    const o = document.createElement("option");
    o.value = c.campaignId;
    o.textContent = (c.spec && c.spec.displayName) || c.campaignId;
    select.appendChild(o);
  }
}

async function refreshStats() {
  const mine = await call("ListMyRatings", { page: { pageSize: 500 } });
  const ratings = mine.ratings || [];
  $("count").textContent = ratings.length + (mine.nextPageToken ? "+" : "");
  const judged = ratings.filter((r) => r.agreesWithVerdict !== undefined);
  const agree = judged.filter((r) => r.agreesWithVerdict).length;
  $("agreement").textContent = judged.length ? Math.round((100 * agree) / judged.length) + "%" : "–";
}

function answerChoices(q) {
  if (q.kind === "QUESTION_KIND_LABEL_CHOICE") {
    return (q.labels || []).map((l, i) => ({
      key: l.shortcut || String((i + 1) % 10),
      text: l.displayName || l.name,
      answer: { label: i },
    }));
  }
  const field = q.kind === "QUESTION_KIND_RELEVANCE" ? "relevant" : "labelCorrect";
  return [
    { key: "y", text: "Yes", answer: { [field]: true } },
    { key: "n", text: "No", answer: { [field]: false } },
  ];
}

function show(item) {
  state.lease = item;
  state.shownAt = performance.now();
  $("item").dataset.lease = item.leaseId;
  const q = item.question || {};
  $("instructions").textContent = q.instructions || "";
  const payload = $("payload");
  payload.innerHTML = "";
  let grid = null;
  if (item.payload && item.payload.png) {
    const img = document.createElement("img");
    img.alt = "item to rate";
    img.src = "data:image/png;base64," + item.payload.png;
    payload.appendChild(img);
    if (isFeatureQuestion(q)) grid = featureGrid(q, payload, img);
  } else if (isFeatureQuestion(q)) {
    grid = wordGrid((item.payload && item.payload.text) || "", payload);
  } else {
    const pre = document.createElement("pre");
    pre.textContent = (item.payload && item.payload.text) || "";
    payload.appendChild(pre);
  }
  const p = q.modelPrediction;
  $("prediction").textContent =
    p && q.labels && q.labels[p.label || 0]
      ? "Model says: " + (q.labels[p.label || 0].displayName || q.labels[p.label || 0].name) +
        " (" + Math.round(100 * (p.confidence || 0)) + "%)"
      : "";
  $("prompt").textContent = q.prompt || "";
  const answers = $("answers");
  answers.innerHTML = "";
  state.choices = grid ? featureChoices(q, grid) : answerChoices(q);
  for (const c of state.choices) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.key = c.key;
    const k = document.createElement("kbd");
    k.textContent = c.key;
    b.appendChild(k);
    b.appendChild(document.createTextNode(c.text));
    b.addEventListener("click", () => answer(c));
    answers.appendChild(b);
  }
  $("keys").textContent = state.choices.map((c) => c.key).join(" ");
  $("item").hidden = false;
  $("empty").hidden = true;
}

async function next() {
  clearTimeout(state.retryTimer);
  state.lease = null;
  // A prefetched lease close to its end is left to expire (the item goes back to the queue)
  // rather than shown and answered too late.
  state.queue = state.queue.filter(
    (item) => !item.expireTime || Date.parse(item.expireTime) > Date.now() + 5000);
  if (state.queue.length) {
    show(state.queue.shift());
    return;
  }
  try {
    const r = await call("Lease", { campaignId: $("campaign").value, maxItems: PREFETCH });
    if (r.items && r.items.length) {
      state.queue = r.items.slice(1);
      show(r.items[0]);
      return;
    }
    $("item").hidden = true;
    $("empty").hidden = false;
    state.retryTimer = setTimeout(next, r.retryAfterMs || 2000);
  } catch (e) {
    say("Could not get an item: " + e.message);
    state.retryTimer = setTimeout(next, 3000);
  }
}

async function answer(choice) {
  if (!state.lease || state.busy) return;
  const given = typeof choice.answer === "function" ? choice.answer() : choice.answer;
  if (!given) return;
  state.busy = true;
  const lease = state.lease;
  const seconds = (performance.now() - state.shownAt) / 1000;
  try {
    await call("Submit", { leaseId: lease.leaseId, answer: given, secondsSpent: seconds });
    say("Saved.", true);
    await refreshStats();
  } catch (e) {
    say(e.code === "FAILED_PRECONDITION" ? "Too late: " + e.message : "Not saved: " + e.message);
  } finally {
    state.busy = false;
  }
  await next();
}

async function skip() {
  if (!state.lease || state.busy) return;
  state.busy = true;
  try {
    await call("Skip", { leaseId: state.lease.leaseId, reason: "SKIP_REASON_UNSURE" });
    say("Skipped.", true);
  } catch (e) {
    say("Skip failed: " + e.message);
  } finally {
    state.busy = false;
  }
  await next();
}

document.addEventListener("keydown", (ev) => {
  if (!state.lease || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target && ev.target.tagName === "INPUT") return;
  const key = ev.key.toLowerCase();
  if (key === "s") {
    ev.preventDefault();
    skip();
    return;
  }
  const choice = (state.choices || []).find((c) => c.key.toLowerCase() === key);
  if (choice) {
    ev.preventDefault();
    answer(choice);
  }
});

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("token").value);
});
// The leases this page holds: the item on screen and the prefetched ones.
function heldLeases() {
  const held = state.lease ? [state.lease, ...state.queue] : state.queue.slice();
  state.lease = null;
  state.queue = [];
  return held.map((item) => item.leaseId);
}

async function releaseHeld() {
  await Promise.all(heldLeases().map((id) => call("Release", { leaseId: id }).catch(() => {})));
}

$("logout").addEventListener("click", async () => {
  await releaseHeld();
  localStorage.removeItem("greenloop.token");
  location.reload();
});
$("campaign").addEventListener("change", async () => {
  await releaseHeld();
  next();
});
window.addEventListener("pagehide", () => {
  for (const id of heldLeases()) {
    fetch("/api/v1/Release", {
      method: "POST",
      keepalive: true,
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + state.token },
      body: JSON.stringify({ leaseId: id }),
    });
  }
});

// Back from the back-forward cache: pagehide released what was held, so lease afresh.
window.addEventListener("pageshow", (ev) => {
  if (ev.persisted && state.token) next();
});

const saved = localStorage.getItem("greenloop.token");
if (saved) signIn(saved);
