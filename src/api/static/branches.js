// A conversation's branches on the page: Edit on each of your messages, Regenerate on the last
// answer (both new turns, streamed like any other: POST /sessions/{id}/messages/{mid}/edit and
// POST /sessions/{id}/regenerate), and "‹ 2/3 ›" on a message with alternatives (POST
// /sessions/{id}/messages/{mid}/switch). `app` gives the page's parts: api, state, log, say,
// humanError, errorOf, fork({message, path, body}) (runs a turn) and render(messages).

function button(className, text, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  if (label) b.setAttribute("aria-label", label);
  return b;
}

function toolbar(article) {
  let bar = article.querySelector(":scope > .msg-actions");
  if (!bar) {
    bar = document.createElement("div");
    bar.className = "msg-actions";
    article.append(bar);
  }
  return bar;
}

export function createBranches(app) {
  const sessionPath = () => `/sessions/${app.state.sessionId}`;

  // Everything the log shows after `article` (the answers a fork replaces).
  function dropAfter(article) {
    while (article.nextElementSibling) article.nextElementSibling.remove();
  }

  // The id of the k-th user message of the transcript shown, for the k-th user article.
  async function userMessageId(article) {
    const users = [...app.log.querySelectorAll("article.msg.user")];
    const body = await app.api.getJson(`${sessionPath()}/messages`);
    const stored = (body.messages ?? []).filter((m) => m.role === "user");
    return stored[users.indexOf(article)]?.id ?? null;
  }

  function startEdit(article) {
    if (app.state.running || article.querySelector("form.edit")) return;
    const bubble = article.querySelector(".bubble");
    const form = document.createElement("form");
    form.className = "edit";
    const input = document.createElement("textarea");
    input.value = bubble.textContent;
    input.setAttribute("aria-label", "Edit your message");
    input.rows = 3;
    const save = button("primary", "Send");
    save.type = "submit";
    const cancel = button("", "Cancel");
    form.append(input, save, cancel);
    bubble.hidden = true;
    article.append(form);
    input.focus();
    const close = () => {
      form.remove();
      bubble.hidden = false;
    };
    cancel.addEventListener("click", close);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text || app.state.running) return;
      let id;
      try {
        id = await userMessageId(article);
      } catch (error) {
        app.say(app.humanError(error));
        return;
      }
      if (!id) {
        app.say("This message is not stored yet; reload the conversation.");
        return;
      }
      close();
      bubble.textContent = text;
      dropAfter(article);
      const path = `${sessionPath()}/messages/${encodeURIComponent(id)}/edit`;
      app.fork({ message: text, path, body: { message: text } });
    });
  }

  function regenerate() {
    if (app.state.running) return;
    const users = app.log.querySelectorAll("article.msg.user");
    const last = users[users.length - 1];
    if (!last) return;
    dropAfter(last);
    const message = last.querySelector(".bubble").textContent;
    app.fork({ message, path: `${sessionPath()}/regenerate`, body: {} });
  }

  async function show(message, index) {
    if (app.state.running) return;
    const path = `${sessionPath()}/messages/${encodeURIComponent(message.id)}/switch`;
    try {
      const response = await app.api.request(path, { method: "POST", json: { index } });
      if (!response.ok) throw await app.errorOf(response);
      app.render((await response.json()).messages ?? []);
    } catch (error) {
      app.say(app.humanError(error));
    }
  }

  // Edit on a user message's article (any: a new one's id is found when it is edited).
  function user(article) {
    const edit = button("link-button edit-button", "Edit", "Edit this message");
    edit.addEventListener("click", () => startEdit(article));
    toolbar(article).append(edit);
  }

  // "‹ n/m ›" on the article showing a message that has alternatives.
  function alternatives(article, message) {
    const alt = message.alternatives;
    if (!alt || alt.count < 2) return;
    const nav = document.createElement("div");
    nav.className = "branch-nav";
    const prev = button("link-button", "‹", "Previous version");
    const next = button("link-button", "›", "Next version");
    const where = document.createElement("span");
    where.className = "branch-index";
    where.textContent = `${alt.index}/${alt.count}`;
    prev.disabled = alt.index <= 1;
    next.disabled = alt.index >= alt.count;
    prev.addEventListener("click", () => show(message, alt.index - 1));
    next.addEventListener("click", () => show(message, alt.index + 1));
    nav.append(prev, where, next);
    toolbar(article).prepend(nav);
  }

  // Regenerate on the last answer only.
  function markLast() {
    for (const b of app.log.querySelectorAll(".regenerate")) b.remove();
    const answers = app.log.querySelectorAll("article.msg.assistant");
    const last = answers[answers.length - 1];
    if (!last || app.state.running || last.dataset.state === "streaming") return;
    const again = button("link-button regenerate", "Regenerate", "Regenerate this answer");
    again.addEventListener("click", regenerate);
    toolbar(last).append(again);
  }

  return { user, alternatives, markLast };
}
