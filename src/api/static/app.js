// Vera's chat page: conversation view, sessions sidebar, errors with retry, API key prompt.
import { ApiError, createApi, errorOf, humanError } from "./api.js";
import { showApproval } from "./approval.js";
import { createBranches } from "./branches.js";
import { renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js";

const $ = (id) => document.getElementById(id);
const ui = {
  sidebar: $("sidebar"),
  toggle: $("toggle-sidebar"),
  newChat: $("new-chat"),
  list: $("session-list"),
  more: $("more-sessions"),
  note: $("sessions-note"),
  notice: $("notice"),
  log: $("conversation"),
  empty: $("empty"),
  jump: $("jump"),
  status: $("status"),
  form: $("composer"),
  input: $("message"),
  send: $("send"),
  stop: $("stop"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyMessage: $("key-message"),
  keyCancel: $("key-cancel"),
  download: $("download"),
};

const LOCAL_SESSIONS = "vera.sessions"; // sessions made in this browser (when GET /sessions is absent)
const RECONNECT_DELAYS = [500, 1000, 2000, 4000, 8000];

const state = {
  sessionId: null,
  running: null, // the turn being streamed
  waiting: null, // the turn paused for the person's approval of a tool call
  lastView: null, // the last answer shown
  cursor: null,
  serverList: true, // GET /sessions exists
  sessions: new Map(), // session_id -> row shown in the sidebar
};

// -- API key prompt ---------------------------------------------------------------------

function askKey(wrong) {
  ui.keyMessage.textContent = wrong
    ? "That API key was not accepted. Check it and enter it again."
    : "This server needs an API key.";
  ui.keyInput.value = "";
  const opener = document.activeElement;
  ui.keyDialog.showModal();
  ui.keyInput.focus();
  return new Promise((resolve) => {
    const done = (key) => {
      ui.keyForm.removeEventListener("submit", onSubmit);
      ui.keyCancel.removeEventListener("click", onCancel);
      ui.keyDialog.removeEventListener("cancel", onCancel);
      ui.keyDialog.close();
      const back = opener instanceof HTMLElement && opener !== document.body ? opener : ui.input;
      back.focus();
      resolve(key);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = ui.keyInput.value.trim();
      if (key) done(key);
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(null);
    };
    ui.keyForm.addEventListener("submit", onSubmit);
    ui.keyCancel.addEventListener("click", onCancel);
    ui.keyDialog.addEventListener("cancel", onCancel);
  });
}

const api = createApi(askKey);

// -- helpers ------------------------------------------------------------------------------

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function node(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = text;
  return n;
}

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function say(text) {
  ui.status.textContent = text;
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content.map((b) => (typeof b === "string" ? b : (b?.text ?? ""))).join("");
  return content == null ? "" : String(content);
}

function brief(value, limit = 140) {
  let text;
  if (value && typeof value === "object" && !Array.isArray(value))
    text = Object.entries(value)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
      .join(", ");
  else text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

// -- scrolling: follow the answer only while the reader is at the bottom -----------------------

let following = true;

function atBottom() {
  const { scrollTop, scrollHeight, clientHeight } = ui.log;
  return scrollHeight - scrollTop - clientHeight < 48;
}

ui.log.addEventListener("scroll", () => {
  following = atBottom();
  if (following) ui.jump.hidden = true;
});

function contentGrew() {
  if (following) ui.log.scrollTop = ui.log.scrollHeight;
  else ui.jump.hidden = false;
}

function scrollToEnd() {
  following = true;
  ui.jump.hidden = true;
  ui.log.scrollTop = ui.log.scrollHeight;
}

ui.jump.addEventListener("click", () => {
  scrollToEnd();
  ui.input.focus();
});

// -- the conversation view -------------------------------------------------------------------

function addUser(text) {
  ui.empty.hidden = true;
  ui.download.hidden = false;
  const article = node("article", "msg user");
  article.append(node("h2", "sr-only", "You"), node("div", "bubble", text));
  ui.log.append(article);
  branches.user(article);
  contentGrew();
  return article;
}

// One answer of Vera: text parts and tool cards in the order they happen, then maybe an error.
class AnswerView {
  constructor() {
    ui.empty.hidden = true;
    this.article = node("article", "msg assistant");
    this.article.append(node("h2", "sr-only", "Vera"));
    this.parts = node("div", "parts");
    this.article.append(this.parts);
    ui.log.append(this.article);
    this.clear();
    state.lastView = this;
  }

  clear() {
    this.parts.replaceChildren();
    this.text = null;
    this.cards = new Map();
    this.article.querySelector(".turn-error")?.remove();
    delete this.article.dataset.state;
  }

  streaming(on) {
    // Screen readers announce the answer once it is complete, not token by token.
    this.article.setAttribute("aria-busy", on ? "true" : "false");
    if (!on) return;
    this.article.dataset.state = "streaming";
    if (!this.parts.hasChildNodes()) this.parts.append(node("span", "typing", "Vera is thinking…"));
  }

  dropTyping() {
    this.parts.querySelector(".typing")?.remove();
  }

  appendText(content) {
    if (!content) return;
    this.dropTyping();
    if (!this.text) {
      this.text = { raw: "", el: node("div", "answer markdown"), queued: false };
      this.parts.append(this.text.el);
    }
    const part = this.text;
    part.raw += content;
    part.el.dataset.raw = part.raw;
    if (!part.queued) {
      part.queued = true;
      requestAnimationFrame(() => {
        part.queued = false;
        part.el.replaceChildren(renderMarkdown(part.raw));
        contentGrew();
      });
    }
  }

  addTool({ id, tool, args }) {
    this.dropTyping();
    this.text = null; // text after the card is a new part
    const card = node("details", "tool-card");
    card.dataset.toolId = id;
    card.dataset.tool = tool;
    card.dataset.status = "running";
    const summary = node("summary");
    const line = node("span", "tool-line");
    line.append(
      node("span", "tool-name", tool),
      node("span", "tool-args", brief(args ?? {}, 80)),
      node("span", "tool-status", "running…"),
    );
    summary.append(line, node("span", "tool-preview muted"));
    const argsBlock = node("pre", "tool-args-full", JSON.stringify(args ?? {}, null, 2));
    card.append(
      summary,
      node("p", "tool-label", "Arguments"),
      argsBlock,
      node("p", "tool-label", "Result"),
      node("pre", "tool-result"),
    );
    this.parts.append(card);
    this.cards.set(id, card);
    contentGrew();
    return card;
  }

  setToolResult({ id, tool, status, result }) {
    const card = this.cards.get(id) ?? this.addTool({ id, tool, args: {} });
    card.dataset.status = status === "error" || status === "declined" ? status : "ok";
    card.querySelector(".tool-status").textContent =
      status === "error" ? "failed" : status === "declined" ? "declined" : "done";
    card.querySelector(".tool-preview").textContent = brief(result);
    card.querySelector(".tool-result").textContent =
      typeof result === "string" ? result : JSON.stringify(result, null, 2);
    if (status === "error") card.open = true;
    contentGrew();
  }

  finish() {
    this.dropTyping();
    this.streaming(false);
    this.article.dataset.state = "done";
  }

  // The turn paused: show its question; `onAnswer(approved)` resumes it.
  ask(interrupt, onAnswer) {
    this.dropTyping();
    this.streaming(false);
    this.article.dataset.state = "waiting";
    showApproval(this.article, interrupt, this.cards, onAnswer);
    contentGrew();
  }

  // Stopped by the user: what came is kept, marked as stopped.
  stopped() {
    this.finish();
    this.article.dataset.state = "stopped";
    this.article.append(node("p", "turn-stopped", "Stopped"));
  }

  fail(error, retry) {
    this.dropTyping();
    this.streaming(false);
    this.article.dataset.state = "error";
    const box = node("div", "turn-error");
    box.setAttribute("role", "alert");
    box.dataset.code = error.code;
    box.append(node("p", "", humanError(error)));
    if (retry) {
      const button = node("button", "retry", "Retry");
      button.type = "button";
      button.setAttribute("aria-label", "Retry this message");
      button.addEventListener("click", () => {
        box.remove();
        retry();
      });
      if (error.retryAfter > 0) {
        button.disabled = true;
        setTimeout(() => {
          button.disabled = false;
        }, error.retryAfter * 1000);
      }
      box.append(button);
    }
    this.article.append(box);
    contentGrew();
  }
}

function clearConversation() {
  state.waiting = null;
  state.lastView = null;
  for (const child of [...ui.log.children]) if (child !== ui.empty) child.remove();
  ui.empty.hidden = false;
  ui.download.hidden = true;
  ui.download.open = false;
  following = true;
  ui.jump.hidden = true;
}

function parseResult(content) {
  const text = textOf(content);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// Render a transcript (GET /sessions/{id}/messages): user messages, and each answer with its
// tool cards and text, in order; a stopped answer marked "Stopped" as it was live.
function renderHistory(messages) {
  clearConversation();
  let answer = null;
  for (const m of messages) {
    if (m.role === "user") {
      branches.alternatives(addUser(textOf(m.content)), m);
      answer = null;
    } else if (m.role === "assistant") {
      answer ??= new AnswerView();
      branches.alternatives(answer.article, m);
      answer.appendText(textOf(m.content));
      for (const call of m.tool_calls ?? []) answer.addTool({ id: call.id, tool: call.name, args: call.args });
      answer.finish();
    } else if (m.role === "tool") {
      answer ??= new AnswerView();
      const status = m.status ?? m.data?.status;
      answer.setToolResult({
        id: m.tool_call_id,
        tool: m.name,
        status: m.data?.artifact?.declined ? "declined" : status === "error" ? "error" : "ok",
        result: parseResult(m.content),
      });
    }
    // A stopped turn's partial answer or cancelled tool results: marked as when it stopped.
    if (answer && m.data?.response_metadata?.stopped && answer.article.dataset.state !== "stopped") {
      answer.stopped();
    }
  }
  branches.markLast();
  scrollToEnd();
}

// -- sending a turn ----------------------------------------------------------------------------

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.hidden = !busy;
  ui.stop.disabled = false;
  ui.form.setAttribute("aria-busy", busy ? "true" : "false");
}

// Stop the running turn (any worker runs it; its stream then ends with `cancelled`).
async function stopTurn() {
  const turn = state.running;
  if (!turn) return;
  ui.stop.disabled = true;
  say("Stopping…");
  const path = `/sessions/${turn.sessionId}/turns/${encodeURIComponent(turn.turnId)}/cancel`;
  try {
    await api.request(path, { method: "POST" });
  } catch {
    ui.stop.disabled = false; // offline: the user may try again
  }
}

// Read a turn's event stream into its view. Returns "done", "error", "interrupt" (it waits
// for the person's approval), "cancelled" or "cut" (the stream ended or broke before a
// terminal event).
async function consume(response, turn) {
  let outcome = "cut";
  try {
    await readEvents(response, (event) => {
      if (event.id) turn.lastEventId = event.id;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      const view = turn.view;
      if (event.type === "session") {
        turn.resumed = Boolean(data.resumed);
        if (turn.fresh) {
          turn.fresh = false;
          view.clear();
          view.streaming(true);
        }
      } else if (event.type === "token") view.appendText(data.content);
      else if (event.type === "tool_call") view.addTool(data);
      else if (event.type === "tool_result") view.setToolResult(data);
      else if (event.type === "interrupt") {
        outcome = "interrupt";
        waitForApproval(turn, data);
      } else if (event.type === "done") {
        outcome = "done";
        view.finish();
      } else if (event.type === "cancelled") {
        outcome = "cancelled";
        view.stopped();
      } else if (event.type === "error") {
        outcome = "error";
        view.fail(new ApiError(data.code, data.message), () => retry(turn));
      }
    });
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    return outcome; // "cut" unless the end arrived before the break
  }
  return outcome;
}

function retry(turn) {
  if (state.running) return;
  send(turn.message, turn);
}

function outcomeNote(turn) {
  const notes = { error: "Vera could not answer.", waiting: "Vera needs your approval to go on." };
  return notes[turn.view.article.dataset.state] ?? "";
}

function waitForApproval(turn, interrupt) {
  state.waiting = turn;
  turn.view.ask(interrupt, (approved) => answerApproval(turn, approved));
}

// Approve or deny what a paused turn asks (POST .../resume) and stream the rest of it.
async function answerApproval(turn, approved) {
  if (state.running) return;
  state.waiting = null;
  state.running = turn;
  turn.fresh = false; // the answer goes on in the same view
  turn.view.streaming(true);
  setBusy(true);
  say(approved ? "Approved. Vera is going on…" : "Denied. Vera is going on without it…");
  const path = `/sessions/${turn.sessionId}/turns/${encodeURIComponent(turn.turnId)}/resume`;
  try {
    let response;
    try {
      response = await api.request(path, { method: "POST", json: { approved } });
    } catch (error) {
      if (error instanceof ApiError) {
        turn.view.fail(error, () => retry(turn));
        return;
      }
      await resume(turn); // the request may have reached the server
      return;
    }
    if (!response.ok) {
      turn.view.fail(await errorOf(response), () => retry(turn));
      return;
    }
    if ((await consume(response, turn)) === "cut") await resume(turn);
  } finally {
    state.running = null;
    setBusy(false);
    say(outcomeNote(turn));
    refreshSessions();
  }
}

// The conversation's last turn waits for an approval (say, opened again later): the message
// goes back to the box, and that turn's question is shown under its answer.
async function askPending(turn, error) {
  const pendingId = error.details?.[0]?.turn_id;
  if (!pendingId) return false;
  let status;
  try {
    status = await api.getJson(`/sessions/${turn.sessionId}/turns/${encodeURIComponent(pendingId)}`);
  } catch {
    return false;
  }
  if (status.status !== "needs_approval") return false;
  turn.view.article.remove();
  turn.asked.remove();
  ui.input.value = turn.message;
  const bubbles = ui.log.querySelectorAll(".msg.user .bubble");
  const message = bubbles.length ? bubbles[bubbles.length - 1].textContent : "";
  const view = turn.before?.article.isConnected ? turn.before : new AnswerView();
  const paused = { turnId: pendingId, sessionId: turn.sessionId, message, view };
  turn.view = view;
  waitForApproval(paused, status.interrupt);
  return true;
}

async function send(message, previous = null) {
  if (state.running) return;

  const sessionId = state.sessionId;
  let turn = previous;
  if (!turn) {
    const asked = addUser(message);
    const before = state.lastView; // the answer a pending approval belongs to
    turn = { turnId: newId(), message, sessionId, asked, before, view: new AnswerView() };
  }
  turn.fresh = true;
  turn.lastEventId = null;
  turn.view.clear();
  turn.view.streaming(true);
  state.running = turn;
  setBusy(true);
  say("Vera is answering…");
  rememberLocally(sessionId, message);
  try {
    let response;
    try {
      response = await api.request(turn.path ?? "/chat", {
        method: "POST",
        json: turn.body
          ? { ...turn.body, turn_id: turn.turnId }
          : { session_id: turn.sessionId, message: turn.message, turn_id: turn.turnId },
      });
    } catch (error) {
      if (error instanceof ApiError) {
        turn.view.fail(error, () => retry(turn));
        return;
      }
      await resume(turn); // the request may have reached the server
      return;
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.code === "approval_pending" && turn.asked && (await askPending(turn, error))) return;
      turn.view.fail(error, () => retry(turn));
      return;
    }
    const outcome = await consume(response, turn);
    if (outcome === "cut") await resume(turn);
    else if (outcome === "done" && (turn.resumed || turn.path)) await reloadIfCurrent(turn.sessionId);
  } finally {
    state.running = null;
    setBusy(false);
    branches.markLast();
    say(outcomeNote(turn));
    refreshSessions();
  }
}

// The stream broke: follow the turn again from its last event (GET .../events with
// Last-Event-ID), a few times with growing pauses; then tell how it ended.
async function resume(turn) {
  const path = `/sessions/${turn.sessionId}/turns/${encodeURIComponent(turn.turnId)}`;
  for (const delay of RECONNECT_DELAYS) {
    say("Connection lost. Reconnecting…");
    await wait(delay);
    let response;
    try {
      const headers = turn.lastEventId ? { "Last-Event-ID": turn.lastEventId } : {};
      response = await api.request(`${path}/events`, { headers });
    } catch (error) {
      if (error instanceof ApiError) break;
      continue; // still offline
    }
    if (response.status === 404) break; // the turn never started (or its events expired)
    if (!response.ok) continue;
    turn.fresh = false;
    const outcome = await consume(response, turn);
    if (outcome === "done" || outcome === "error" || outcome === "interrupt" || outcome === "cancelled") {
      say("");
      return;
    }
    // The stream ended without an end: ask how the turn stands.
    try {
      const status = await api.getJson(path);
      if (status.status === "done" || status.status === "cancelled") {
        await reloadIfCurrent(turn.sessionId);
        return;
      }
      if (status.status === "error") {
        turn.view.fail(new ApiError(status.error.code, status.error.message), () => retry(turn));
        return;
      }
      if (status.status === "needs_approval") {
        waitForApproval(turn, status.interrupt);
        return;
      }
      if (status.status === "interrupted") {
        turn.view.fail(new ApiError("interrupted", ""), () => retry(turn));
        return;
      }
    } catch {
      // try again
    }
  }
  turn.view.fail(new ApiError("connection_lost", ""), () => retry(turn));
}

// A turn that forks the transcript (branches.js: regenerate, edit), streamed like a message.
function fork({ message, path, body }) {
  const sessionId = state.sessionId;
  send(message, { turnId: newId(), message, sessionId, view: new AnswerView(), path, body });
}

const branches = createBranches({
  api,
  state,
  log: ui.log,
  say,
  humanError,
  errorOf,
  fork,
  render: renderHistory,
});

async function reloadIfCurrent(sessionId) {
  if (state.sessionId === sessionId) await openSession(sessionId, { focus: false });
}

ui.stop.addEventListener("click", stopTurn);

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const message = ui.input.value.trim();
  if (!message || state.running) return;
  if (state.waiting) {
    say("Approve or deny the tool call above first."); // the message stays in the box
    return;
  }
  ui.input.value = "";
  scrollToEnd();
  send(message);
  ui.input.focus();
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

// -- sessions ----------------------------------------------------------------------------------

function localSessions() {
  try {
    return JSON.parse(localStorage.getItem(LOCAL_SESSIONS) ?? "[]");
  } catch {
    return [];
  }
}

function rememberLocally(sessionId, message) {
  const rows = localSessions().filter((r) => r.session_id !== sessionId);
  const known = localSessions().find((r) => r.session_id === sessionId);
  const now = new Date().toISOString();
  rows.unshift({
    session_id: sessionId,
    title: known?.title ?? message.slice(0, 80),
    created_at: known?.created_at ?? now,
    updated_at: now,
  });
  localStorage.setItem(LOCAL_SESSIONS, JSON.stringify(rows.slice(0, 100)));
}

function forgetLocally(sessionId) {
  const rows = localSessions().filter((r) => r.session_id !== sessionId);
  localStorage.setItem(LOCAL_SESSIONS, JSON.stringify(rows));
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function ago(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  const units = [
    [3600, "minute", 60],
    [86400, "hour", 3600],
    [604800, "day", 86400],
    [Infinity, "week", 604800],
  ];
  if (Math.abs(seconds) < 45) return "just now";
  for (const [limit, unit, size] of units)
    if (Math.abs(seconds) < limit) return relative.format(Math.round(seconds / size), unit);
  return "";
}

function sessionItem(row) {
  const li = node("li", "session");
  li.dataset.sessionId = row.session_id;
  const title = row.title || "Untitled conversation";
  const open = node("button", "session-open");
  open.type = "button";
  const time = node("time", "muted small", ago(row.updated_at));
  time.dateTime = row.updated_at ?? "";
  if (row.updated_at) time.title = new Date(row.updated_at).toLocaleString();
  open.append(node("span", "session-title", title), time);
  if (row.session_id === state.sessionId) open.setAttribute("aria-current", "page");
  open.addEventListener("click", () => {
    location.hash = row.session_id;
    closeSidebarOnPhone();
  });
  const del = node("button", "session-delete icon-button", "✕");
  del.type = "button";
  del.setAttribute("aria-label", `Delete “${title}”`);
  del.title = "Delete";
  del.addEventListener("click", () => deleteSession(row.session_id, title));
  li.append(open, del);
  return li;
}

function showSessions(rows, { append = false } = {}) {
  if (!append) {
    ui.list.replaceChildren();
    state.sessions.clear();
  }
  for (const row of rows) {
    if (state.sessions.has(row.session_id)) continue;
    state.sessions.set(row.session_id, row);
    ui.list.append(sessionItem(row));
  }
  if (!ui.list.hasChildNodes()) {
    ui.note.textContent = "No conversations yet.";
    ui.note.hidden = false;
  } else if (!state.serverList) {
    ui.note.textContent = "Conversations started in this browser.";
    ui.note.hidden = false;
  } else ui.note.hidden = true;
}

let refreshing = null;

async function loadSessions({ more = false } = {}) {
  const query = new URLSearchParams({ limit: "20" });
  if (more && state.cursor) query.set("cursor", state.cursor);
  let response;
  try {
    response = await api.request(`/sessions?${query}`);
  } catch (error) {
    if (error instanceof ApiError) return; // no key given
    ui.note.textContent = "The conversation list could not be loaded.";
    ui.note.hidden = false;
    return;
  }
  if (response.status === 404 || response.status === 405) {
    // A server without GET /sessions: list the sessions of this browser.
    state.serverList = false;
    ui.more.hidden = true;
    showSessions(localSessions());
    return;
  }
  if (!response.ok) {
    const error = await errorOf(response);
    ui.note.textContent = `The conversation list could not be loaded: ${humanError(error)}`;
    ui.note.hidden = false;
    return;
  }
  const body = await response.json();
  state.serverList = true;
  state.cursor = body.next_cursor ?? null;
  ui.more.hidden = !state.cursor;
  showSessions(body.sessions ?? [], { append: more });
}

function refreshSessions() {
  refreshing ??= loadSessions().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

ui.more.addEventListener("click", () => loadSessions({ more: true }));

async function deleteSession(sessionId, title) {
  if (!window.confirm(`Delete the conversation “${title}”? This cannot be undone.`)) return;
  let response;
  try {
    response = await api.request(`/sessions/${sessionId}`, { method: "DELETE" });
  } catch (error) {
    say(error instanceof ApiError ? humanError(error) : "Could not reach Vera to delete it.");
    return;
  }
  if (response.status === 409) {
    say("Vera is answering in that conversation right now; delete it once the answer is done.");
    return;
  }
  if (!response.ok && response.status !== 404) {
    say(`Could not delete it: ${humanError(await errorOf(response))}`);
    return;
  }
  forgetLocally(sessionId);
  say(`Deleted “${title}”.`);
  if (state.sessionId === sessionId) newChat();
  await refreshSessions();
  ui.input.focus();
}

// Download the conversation shown (GET /sessions/{id}/export, every branch included) as a
// file: Markdown to read, JSON to keep.
async function downloadConversation(format) {
  ui.download.open = false;
  const sessionId = state.sessionId;
  let response;
  try {
    response = await api.request(`/sessions/${sessionId}/export?format=${format}&branches=true`);
  } catch (error) {
    say(error instanceof ApiError ? humanError(error) : "Could not reach Vera to download it.");
    return;
  }
  if (!response.ok) {
    say(`Could not download it: ${humanError(await errorOf(response))}`);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = node("a");
  link.href = url;
  link.download = `vera-${sessionId}.${format === "json" ? "json" : "md"}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  say("Downloaded the conversation.");
}

for (const button of ui.download.querySelectorAll("button[data-format]"))
  button.addEventListener("click", () => downloadConversation(button.dataset.format));

function markCurrent() {
  for (const button of ui.list.querySelectorAll(".session-open")) {
    const current = button.parentElement.dataset.sessionId === state.sessionId;
    if (current) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
}

async function openSession(sessionId, { focus = true } = {}) {
  state.sessionId = sessionId;
  markCurrent();
  let body;
  try {
    body = await api.getJson(`/sessions/${sessionId}/messages`);
  } catch (error) {
    if (state.sessionId !== sessionId) return;
    clearConversation();
    if (!(error instanceof ApiError && error.code === "not_found"))
      say(error instanceof ApiError ? humanError(error) : "Could not load this conversation.");
    return;
  }
  if (state.sessionId !== sessionId) return; // switched again meanwhile
  renderHistory(body.messages ?? []);
  if (focus) ui.input.focus();
}

// A new conversation has nothing on the server yet: never ask for its messages (a 404).
function newChat({ push = false } = {}) {
  const id = newId();
  if (push) history.pushState(null, "", `#${id}`); // Back returns to the previous one
  else history.replaceState(null, "", `#${id}`);
  state.sessionId = id;
  clearConversation();
  markCurrent();
  ui.input.focus();
}

ui.newChat.addEventListener("click", () => {
  if (state.running) return;
  newChat({ push: true });
  closeSidebarOnPhone();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function route() {
  const id = location.hash.slice(1);
  if (!UUID.test(id)) {
    newChat();
    return;
  }
  if (id === state.sessionId) return;
  if (state.running) {
    // A turn is streaming: stay (it keeps running on the server either way).
    history.replaceState(null, "", `#${state.sessionId}`);
    say("Wait for the answer to finish before switching conversations.");
    return;
  }
  say("");
  openSession(id);
}

window.addEventListener("hashchange", route);

// -- phone-width sidebar -----------------------------------------------------------------------

function closeSidebarOnPhone() {
  if (document.body.classList.contains("sidebar-open")) {
    document.body.classList.remove("sidebar-open");
    ui.toggle.setAttribute("aria-expanded", "false");
  }
}

ui.toggle.addEventListener("click", () => {
  const open = document.body.classList.toggle("sidebar-open");
  ui.toggle.setAttribute("aria-expanded", String(open));
  if (open) ui.newChat.focus();
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeSidebarOnPhone();
});

// -- the service's state (/health) ---------------------------------------------------------------

async function checkHealth() {
  let report;
  try {
    report = await (await fetch("/health", { cache: "no-store" })).json();
  } catch {
    return;
  }
  const notes = [];
  if (String(report.model ?? "").startsWith("offline"))
    notes.push(
      "Offline demo: no language model is configured (OPENAI_API_KEY is not set), so a " +
        "rule-based stand-in answers weather and stock questions only.",
    );
  if (report.model_status === "rejected")
    notes.push("The model provider is refusing the service's requests; answers will fail until it is fixed.");
  if (report.database === "unreachable")
    notes.push("The conversation store is unreachable right now; messages cannot be sent.");
  ui.notice.textContent = notes.join(" ");
  ui.notice.hidden = notes.length === 0;
}

// -- start -------------------------------------------------------------------------------------

checkHealth();
route();
refreshSessions();
document.documentElement.dataset.ready = "true";
