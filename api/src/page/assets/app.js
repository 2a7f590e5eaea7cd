// The voucher page. Everything it shows comes from this API's own JSON: /api/v1/table (version,
// provenance, drops), /api/v1/versions (what changed, what the gate held, the canary), /api/v1/segments (the
// table) and POST /api/v1/voucher (the form).
"use strict";

const TOKEN_KEY = "voucher-api-token";
const POLL_MS = 5000;
const FIELDS = ["customer_id", "country_code", "last_order_ts", "first_order_ts", "total_orders", "segment_name"];
// What a request by id sends: the API takes the other fields from the customer's stored profile.
const BY_ID = new Set(["customer_id", "segment_name"]);
const NUMERIC = new Set(["customer_id", "total_orders"]);
const SVG = "http://www.w3.org/2000/svg";

const state = { version: null, timer: null };
const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat("en");

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The token is kept for this tab only.
const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const secret = token.get();
  if (secret) {
    headers.Authorization = `Bearer ${secret}`;
  }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    throw new Unauthorized(secret ? "The token was refused (401): check it and try again." : "This API needs a token (401).");
  }
  const body = await response.json().catch(() => null);
  return { status: response.status, body };
}

function askForToken(message) {
  $("token-section").hidden = false;
  $("token-message").textContent = message;
  $("token-message").classList.add("error");
  announce(message, true);
  $("token").focus();
}

function announce(message, warn = false) {
  const node = $("announce");
  node.textContent = message;
  node.classList.toggle("warn", warn);
}

function age(isoTime) {
  const seconds = Math.max(0, (Date.now() - Date.parse(isoTime)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} seconds ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} minutes ago`;
  if (seconds < 2 * 86400) return `${Math.round(seconds / 3600)} hours ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

function renderProvenance(table) {
  const facts = $("provenance");
  facts.replaceChildren();
  const add = (term, value, id) => {
    facts.append(el("dt", {}, term), el("dd", id ? { id } : {}, value));
  };
  const built = new Date(table.created_at);
  add("Version", table.version, "fact-version");
  add("Built", `${built.toISOString().replace("T", " ").replace(".000Z", " UTC")} (${age(table.created_at)})`, "fact-built");
  add("Segments in the table", number.format(table.rows), "fact-rows");
  const m = table.manifest;
  if (m) {
    add("From", m.input, "fact-input");
    add("Countries asked for", m.countries.join(", "));
    add("History rows read", number.format(m.rows_read), "fact-rows-read");
    add("Rows kept after cleaning", `${number.format(m.rows_kept)} (${m.rows_read ? ((100 * m.rows_kept) / m.rows_read).toFixed(1) : "0"} % of those read)`, "fact-rows-kept");
    add("Made by", `${m.producer} in ${number.format(m.duration_ms)} ms`);
  } else {
    add("Provenance", "This version has no readable manifest: its inputs and drops are unknown.");
  }
  const drops = $("drops");
  const body = drops.tBodies[0];
  body.replaceChildren();
  for (const rule of table.drop_rules) {
    body.append(el("tr", { "data-rule": rule.rule },
      el("th", { scope: "row" }, rule.rule),
      el("td", {}, rule.description),
      el("td", { class: "num" }, rule.dropped === null ? "unknown" : number.format(rule.dropped))));
  }
  drops.hidden = false;
  $("summary").textContent = `Version ${table.version}, built ${age(table.created_at)}` +
    (m ? `, from ${number.format(m.rows_read)} history rows (${number.format(m.rows_read - m.rows_kept)} dropped).` : ".");
}

const percent = (share) => `${(100 * share).toFixed(1)} %`;
const amount = (value) => (value === null ? "none" : number.format(value));

// The live version against the one it replaced, and the versions the gate held since.
function renderVersions(versions) {
  const changes = versions.changes;
  const table = $("changes");
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!changes) {
    $("changes-summary").textContent = versions.live
      ? `Version ${versions.live} is the first one served here: nothing to compare it with.`
      : "No version is live yet.";
    table.hidden = true;
  } else {
    const byType = Object.entries(changes.changed_share_by_segment_type)
      .map(([type, share]) => `${type}: ${percent(share)}`).join(", ");
    $("changes-summary").textContent = `Version ${changes.to} against ${changes.from}, the one it replaced: ` +
      `${number.format(changes.segments_changed)} segment(s) changed, ${percent(changes.changed_share)} of the ` +
      `history's customers get another voucher` + (byType ? ` (${byType}).` : ".");
    for (const s of changes.segments) {
      body.append(el("tr", { "data-change": s.change },
        el("td", {}, s.country_code), el("td", {}, s.segment_name), el("td", {}, s.segment),
        el("td", {}, s.change), el("td", { class: "num" }, amount(s.from_amount)),
        el("td", { class: "num" }, amount(s.to_amount))));
    }
    $("changes-caption").textContent = `Segments whose voucher changed from ${changes.from} to ${changes.to}`;
    table.hidden = changes.segments.length === 0;
  }
  const held = $("held");
  held.replaceChildren();
  for (const version of versions.held) {
    const list = el("ul", {});
    for (const check of version.failed) {
      list.append(el("li", { "data-check": check.check },
        `${check.check} on ${check.subject}: ${check.observed_shown} (at most ${check.bound_shown})` +
        (check.detail ? `, ${check.detail}` : "")));
    }
    held.append(el("div", { class: "held", "data-version": version.version },
      el("h3", {}, `Held: version ${version.version}`),
      el("p", {}, `The gate kept it from going live` +
        (version.baseline ? ` when compared with ${version.baseline}` : "") +
        `. It is not served unless promoted (voucher-etl promote). Checks it failed:`),
      list));
  }
}

// The canary: its version and share, the answers by version so far, and the share of answers
// it changes, predicted (diff of the two versions over the history) against measured (shadow).
function renderCanary(canary) {
  const section = $("canary-section");
  section.hidden = !canary;
  if (!canary) {
    return;
  }
  const answers = Object.entries(canary.answers)
    .map(([version, count]) => `${number.format(count)} by ${version}`).join(", ");
  $("canary-summary").textContent = `Version ${canary.version} answers ${canary.percent} % of customers ` +
    `(by customer_id), since ${canary.since} (${canary.by}: ${canary.reason}). ` +
    (canary.served ? `Answers so far on this replica: ${answers || "none"}.`
      : "This replica cannot load it: the live version answers everyone.");
  const body = $("canary").tBodies[0];
  body.replaceChildren();
  const share = (value) => (value === null ? "-" : percent(value));
  for (const [type, s] of Object.entries(canary.changed_share_by_segment_type)) {
    body.append(el("tr", { "data-segment-name": type },
      el("td", {}, type), el("td", { class: "num" }, share(s.predicted)),
      el("td", { class: "num" }, share(s.measured)), el("td", { class: "num" }, number.format(s.compared)),
      el("td", { class: "num" }, number.format(s.different))));
  }
}

async function loadVersions() {
  const { status, body } = await api("/api/v1/versions");
  if (status === 200) {
    renderVersions(body);
    renderCanary(body.canary);
  } else {
    $("changes-summary").textContent = `The versions cannot be listed (the API answered ${status}).`;
  }
}

// One chart per country and segment type: a bar per segment for the chosen amount, and under
// it a thin bar for its share of the segment's rows. The table beside it says the same in text.
function chart(country, type, segments, index) {
  const width = 520;
  const row = 46;
  const labelWidth = 90;
  const barSpace = width - labelWidth - 110;
  const height = segments.length * row + 10;
  const max = Math.max(...segments.map((s) => s.voucher), 1);
  const captionId = `chart-${index}-caption`;
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": captionId });
  segments.forEach((s, i) => {
    const y = i * row + 6;
    const share = s.segment_rows ? s.occurrences / s.segment_rows : 0;
    const amountWidth = Math.max(2, (barSpace * s.voucher) / max);
    svg.append(
      el("svg:text", { x: 0, y: y + 14 }, s.segment),
      el("svg:rect", { class: "amount-bar", x: labelWidth, y, width: amountWidth.toFixed(1), height: 20, rx: 2 }),
      el("svg:text", { x: labelWidth + amountWidth + 6, y: y + 15 }, number.format(s.voucher)),
      el("svg:rect", { class: "track", x: labelWidth, y: y + 24, width: barSpace, height: 8 }),
      el("svg:rect", { class: "share-bar", x: labelWidth, y: y + 24, width: (barSpace * share).toFixed(1), height: 8 }),
      el("svg:text", { x: labelWidth + barSpace + 6, y: y + 32 }, `${Math.round(share * 100)} % won`));
  });
  const figure = el("figure", { class: "chart" }, svg,
    el("figcaption", { id: captionId }, `${country}, ${type}: voucher amount per segment (bars) and the share of the segment's rows it won (thin bars).`));
  const table = el("table", { class: "data", "data-country": country, "data-type": type },
    el("caption", {}, `${country}, ${type}`),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Segment"),
      el("th", { scope: "col", class: "num" }, "Voucher"),
      el("th", { scope: "col", class: "num" }, "Won"),
      el("th", { scope: "col", class: "num" }, "Rows"))));
  const body = el("tbody");
  for (const s of segments) {
    const share = s.segment_rows ? Math.round((100 * s.occurrences) / s.segment_rows) : 0;
    body.append(el("tr", { "data-segment": s.segment },
      el("th", { scope: "row" }, `${s.segment} `, el("span", { class: "format" }, s.upper === null ? `(${s.lower} and up)` : `(${s.lower}–${s.upper})`)),
      el("td", { class: "num voucher" }, number.format(s.voucher)),
      el("td", { class: "num" }, `${share} % (${number.format(s.occurrences)})`),
      el("td", { class: "num" }, number.format(s.segment_rows))));
  }
  table.append(body);
  return el("div", { class: "chart-pair" }, figure, table);
}

function renderSegments(listing) {
  const root = $("segments");
  root.replaceChildren();
  const countries = Object.keys(listing.countries).sort();
  const datalist = $("countries");
  datalist.replaceChildren(...countries.map((c) => el("option", { value: c })));
  let index = 0;
  for (const country of countries) {
    root.append(el("h3", {}, country));
    for (const [type, segments] of Object.entries(listing.countries[country])) {
      root.append(chart(country, type, segments, index++));
    }
  }
}

async function load() {
  const [table, segments] = await Promise.all([api("/api/v1/table"), api("/api/v1/segments")]);
  if (table.status === 503 || segments.status === 503) {
    $("summary").textContent = "No voucher table is loaded yet; this page checks again every few seconds.";
    return null;
  }
  if (table.status !== 200 || segments.status !== 200) {
    throw new Error(`the API answered ${table.status} and ${segments.status}`);
  }
  renderProvenance(table.body);
  renderSegments(segments.body);
  await loadVersions();
  return table.body.version;
}

// Polls the version; a new one is shown without reloading the page, and said so.
async function poll() {
  try {
    const { status, body } = await api("/api/v1/table");
    if (status === 200 && body.version !== state.version) {
      const before = state.version;
      state.version = await load();
      if (before !== null && state.version !== null) {
        announce(`The table changed: version ${state.version} is live now (was ${before}).`);
      }
    } else if (status === 200) {
      renderProvenance(body); // keeps the age current
      await loadVersions(); // a held version appears without the live one changing
    }
  } catch (error) {
    if (error instanceof Unauthorized) {
      askForToken(error.message);
      return; // polling resumes once a token is given
    }
    announce(`Cannot reach the API: ${error.message}. Retrying.`, true);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

function restartPolling() {
  clearTimeout(state.timer);
  state.version = null;
  poll();
}

function clearErrors() {
  for (const field of FIELDS) {
    $(`${field}-error`).textContent = "";
    $(field).removeAttribute("aria-invalid");
  }
}

function byId() {
  return $("mode-id").checked;
}

// In the "look up by id" mode only the id and the segment type are sent.
function showMode() {
  $("profile-fields").hidden = byId();
}

// The form's values as the API reads them: numbers where a number belongs (when the text is
// one, else the text, so that the API says what is wrong), empty fields left out.
function requestFromForm() {
  const request = {};
  for (const field of FIELDS) {
    if (byId() && !BY_ID.has(field)) continue;
    const text = $(field).value.trim();
    if (text === "") continue;
    request[field] = NUMERIC.has(field) && /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
  }
  return request;
}

async function tryCustomer(event) {
  event.preventDefault();
  clearErrors();
  const answer = $("answer");
  answer.className = "answer";
  answer.textContent = "Asking the API…";
  try {
    const { status, body } = await api("/api/v1/voucher", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(requestFromForm()),
    });
    if (status === 200) {
      answer.replaceChildren(
        el("span", { class: "voucher", id: "answer-voucher" }, number.format(body.voucher)),
        ` for ${body.country_code}, ${body.segment_name} segment ${body.segment} (table ${body.version}).`);
    } else if (status === 422) {
      answer.className = "answer failed";
      const general = [];
      // An error is shown by its field when the person sent that field; a stored profile's
      // (loc "profile") or a field not sent is said in the answer.
      const shownByField = (error) => error.loc[0] === "body" && FIELDS.includes(error.loc[1]) &&
        !(byId() && !BY_ID.has(error.loc[1]));
      for (const error of body.detail) {
        const field = error.loc[1];
        if (shownByField(error)) {
          $(`${field}-error`).textContent = error.msg;
          $(field).setAttribute("aria-invalid", "true");
        } else {
          general.push(field ? `${field}: ${error.msg}` : error.msg);
        }
      }
      answer.textContent = `The API refused ${body.detail.length} field(s)` +
        (general.length ? `: ${general.join("; ")}` : "; see the messages by the fields.");
      const first = body.detail.find(shownByField);
      if (first) $(first.loc[1]).focus();
    } else {
      answer.className = "answer failed";
      answer.textContent = `No voucher (${status}): ${body && body.detail ? body.detail : "the API gave no reason"}`;
    }
  } catch (error) {
    answer.className = "answer failed";
    if (error instanceof Unauthorized) {
      answer.textContent = error.message;
      askForToken(error.message);
    } else {
      answer.textContent = `Cannot reach the API: ${error.message}`;
    }
  }
}

function start() {
  $("try-form").addEventListener("submit", tryCustomer);
  for (const mode of ["mode-full", "mode-id"]) $(mode).addEventListener("change", showMode);
  showMode();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token.set($("token").value.trim());
    $("token").value = "";
    $("token-section").hidden = true;
    announce("Using the token given.");
    restartPolling();
  });
  $("token-forget").addEventListener("click", () => {
    token.forget();
    announce("The token is forgotten.");
    restartPolling();
  });
  poll();
}

document.addEventListener("DOMContentLoaded", start);
