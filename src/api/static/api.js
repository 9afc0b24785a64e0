// Calls to Vera's HTTP API: the API key (kept in sessionStorage, asked for on a 401), JSON
// error bodies, and the human text of every error code.

const KEY_STORAGE = "vera.apiKey";

export class ApiError extends Error {
  constructor(code, message, { status = 0, retryAfter = 0, details = null } = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
    this.details = details;
  }
}

// What each error code means to a person (the API's own message is shown when a code is
// not listed here).
const HUMAN = {
  session_busy:
    "Vera is still answering an earlier message in this conversation (perhaps in another tab). " +
    "Wait for it to finish, then retry.",
  rate_limited: "Too many requests in the last minute.",
  llm_timeout: "The model took too long to answer.",
  llm_unavailable: "The language model is unavailable right now.",
  llm_incomplete: "The model's answer broke off before it was complete.",
  llm_invalid_output: "The model produced an invalid tool call, so nothing was run.",
  llm_rejected:
    "The model provider rejected the service's request (its key or model needs fixing on the " +
    "server). Retrying will not help until then.",
  storage_unavailable: "Vera cannot reach its conversation store right now. Try again shortly.",
  overloaded: "Vera is very busy right now. Retry in a few seconds.",
  shutting_down: "The server is restarting. Retry in a moment to get this answer.",
  turn_limit: "This question needed more steps than Vera allows in one answer; ask for less at once.",
  approval_pending:
    "Vera is waiting for your approval of a tool call in this conversation; approve or deny it first.",
  nothing_to_resume: "That question was already answered.",
  lease_lost: "Another answer took over this conversation. Reload it to see where it stands.",
  internal: "Something went wrong on the server.",
  unauthorized: "Vera needs a valid API key to answer. Retry and enter the key.",
  payload_too_large: "That message is too long to send.",
  connection_lost: "The connection to Vera was lost and could not be restored.",
  interrupted: "This answer was interrupted before it finished (the server stopped).",
};

export function humanError(error) {
  const base = HUMAN[error.code] ?? error.message ?? "Something went wrong.";
  if (error.code === "rate_limited" && error.retryAfter > 0) {
    const s = error.retryAfter;
    return `${base} You can retry in ${s} second${s === 1 ? "" : "s"}.`;
  }
  if (error.code === "invalid_request" && Array.isArray(error.details) && error.details.length) {
    return error.details.map((d) => d.message ?? d.msg ?? JSON.stringify(d)).join(" ");
  }
  return base;
}

// The ApiError of a non-2xx response (its JSON body {code, message, details}).
export async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || 0;
  return new ApiError(body.code ?? `http_${response.status}`, body.message ?? response.statusText, {
    status: response.status,
    retryAfter,
    details: body.details ?? null,
  });
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

// An API client; `askKey(wrong)` shows the key prompt and resolves with the key entered (or
// null when the person cancels). Concurrent 401s share one prompt.
export function createApi(askKey) {
  let prompt = null;

  function promptOnce(wrong) {
    if (!prompt) {
      prompt = Promise.resolve(askKey(wrong)).finally(() => {
        prompt = null;
      });
    }
    return prompt;
  }

  // fetch() with the API key; on 401 asks for the key and tries again.
  async function request(path, { json, headers = {}, ...init } = {}) {
    for (;;) {
      const sent = storedKey();
      const h = new Headers(headers);
      if (sent) h.set("X-API-Key", sent);
      let body = init.body;
      if (json !== undefined) {
        h.set("Content-Type", "application/json");
        body = JSON.stringify(json);
      }
      const response = await fetch(path, { ...init, body, headers: h, cache: "no-store" });
      if (response.status !== 401) return response;
      if (storedKey() !== sent) continue; // another request got a new key meanwhile
      sessionStorage.removeItem(KEY_STORAGE);
      const key = await promptOnce(Boolean(sent));
      if (!key) throw await errorOf(response);
      sessionStorage.setItem(KEY_STORAGE, key);
    }
  }

  // GET a JSON body; ApiError on an error status.
  async function getJson(path) {
    const response = await request(path);
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  return { request, getJson };
}
