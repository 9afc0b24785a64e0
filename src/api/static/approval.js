// Approve before acting: the question a paused turn asks (its `interrupt` event), shown in
// the answer with Approve / Deny, and the tool cards of the calls that wait for it.

function element(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = text;
  return n;
}

function shortArgs(args) {
  const text = JSON.stringify(args ?? {});
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

// Show `interrupt` (the event's data) at the end of `article`; `onAnswer(approved)` runs
// once, when the person approves (true) or denies (false) every call asked.
export function showApproval(article, interrupt, cards, onAnswer) {
  article.querySelector(".approval")?.remove();
  const value = interrupt?.value ?? {};
  const calls = Array.isArray(value.tool_calls) ? value.tool_calls : [];
  // Every call of the step waits: those asked for approval, and the others with them.
  const asked = new Set(calls.map((call) => call.id));
  for (const [id, card] of cards) {
    if (card.dataset.status !== "running") continue;
    card.dataset.status = "waiting";
    card.querySelector(".tool-status").textContent = asked.has(id) ? "awaiting approval" : "waiting";
  }
  const box = element("div", "approval");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Approval needed");
  box.dataset.interruptId = interrupt?.id ?? "";
  box.append(element("p", "approval-question", value.question ?? "Vera asks for your approval."));
  const list = element("ul", "approval-calls");
  for (const call of calls) {
    const item = element("li");
    item.append(element("code", "tool-name", call.tool), " ", element("code", "", shortArgs(call.args)));
    list.append(item);
  }
  box.append(list);
  const approve = element("button", "approve primary", "Approve");
  const deny = element("button", "deny", "Deny");
  for (const [button, approved] of [
    [approve, true],
    [deny, false],
  ]) {
    button.type = "button";
    button.addEventListener("click", () => {
      approve.disabled = deny.disabled = true;
      box.dataset.answer = approved ? "approved" : "denied";
      box.remove();
      onAnswer(approved);
    });
  }
  const actions = element("div", "approval-actions");
  actions.append(approve, deny);
  box.append(actions);
  article.append(box);
  approve.focus({ preventScroll: true });
  return box;
}
