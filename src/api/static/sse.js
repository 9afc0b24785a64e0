// A streaming Server-Sent Events reader for fetch() bodies (EventSource cannot POST).
// It follows the WHATWG parsing rules: lines end in \r\n, \n or \r; "data" lines are
// joined with \n; comment lines (": ping") are ignored; an event is dispatched at a blank line.

export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.lastEventId = null;
    this.clear();
  }

  clear() {
    this.data = [];
    this.type = "";
    this.id = null;
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      if (ch === "\r" && i === this.buffer.length - 1) break; // maybe the first half of \r\n
      this.line(this.buffer.slice(start, i));
      if (ch === "\r" && this.buffer[i + 1] === "\n") i++;
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
  }

  dispatch() {
    if (this.data.length === 0) {
      this.clear();
      return;
    }
    const event = {
      type: this.type || "message",
      data: this.data.join("\n"),
      id: this.lastEventId,
    };
    this.clear();
    this.onEvent(event);
  }
}

// Read a fetch() Response as an event stream, calling onEvent(event) for each event.
// Resolves when the body ends; rejects when the connection breaks.
export async function readEvents(response, onEvent) {
  const parser = new SseParser(onEvent);
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
  } finally {
    reader.releaseLock();
  }
}
