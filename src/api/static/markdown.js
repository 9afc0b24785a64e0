// A small, safe Markdown renderer for Vera's answers.
//
// It builds DOM nodes with createElement/createTextNode only: no innerHTML, so any HTML in
// the text (from the model, a tool or the user) is shown as text and never runs. It covers
// what chat answers use: paragraphs and line breaks, headings, bullet and numbered lists,
// block quotes, fenced code, inline code, bold, italics and links (http, https and mailto
// only). Unclosed constructs (a code fence still streaming) render as far as they go.

const SAFE_URL = /^(https?:\/\/|mailto:)/i;
const INLINE =
  /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|(?<!\w)__(?=\S)([\s\S]*?\S)__(?!\w)|\*([^\s*](?:[\s\S]*?[^\s*])?)\*|\[([^\]\n]+)\]\(([^()\s]+)\)/;

function el(tag, children = []) {
  const node = document.createElement(tag);
  for (const child of children) node.append(child);
  return node;
}

// Inline Markdown of one block's text, as a list of nodes.
export function renderInline(text) {
  const nodes = [];
  let rest = text;
  while (rest) {
    const match = INLINE.exec(rest);
    if (!match) {
      pushText(nodes, rest);
      break;
    }
    pushText(nodes, rest.slice(0, match.index));
    const [whole, , code, bold1, bold2, italic, label, url] = match;
    if (code !== undefined) nodes.push(el("code", [code]));
    else if (bold1 !== undefined || bold2 !== undefined)
      nodes.push(el("strong", renderInline(bold1 ?? bold2)));
    else if (italic !== undefined) nodes.push(el("em", renderInline(italic)));
    else if (SAFE_URL.test(url)) {
      const link = el("a", renderInline(label));
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      nodes.push(link);
    } else pushText(nodes, whole); // an unsafe link (javascript:, data:, ...) stays text
    rest = rest.slice(match.index + whole.length);
  }
  return nodes;
}

// Text with its line breaks as <br>.
function pushText(nodes, text) {
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (i > 0) nodes.push(document.createElement("br"));
    if (line) nodes.push(document.createTextNode(line));
  });
}

const FENCE = /^\s{0,3}(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;

// Block Markdown of a whole answer, as a DocumentFragment.
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? "")
    .replace(/\r\n?/g, "\n")
    .split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (absent while it still streams)
      const code = el("code", [body.join("\n")]);
      if (fence[2]) code.dataset.language = fence[2];
      fragment.append(el("pre", [code]));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      // Answers sit under the page's own headings: # becomes h3, deeper levels h4-h6.
      const level = Math.min(6, heading[1].length + 2);
      fragment.append(el(`h${level}`, renderInline(heading[2])));
      i++;
      continue;
    }
    if (BULLET.test(line) || NUMBERED.test(line)) {
      const numbered = !BULLET.test(line);
      const pattern = numbered ? NUMBERED : BULLET;
      const list = el(numbered ? "ol" : "ul");
      if (numbered) {
        const first = Number(NUMBERED.exec(line)[1]);
        if (first !== 1) list.start = first;
      }
      while (i < lines.length && pattern.test(lines[i])) {
        const match = pattern.exec(lines[i++]);
        const item = [numbered ? match[2] : match[1]];
        // Indented continuation lines belong to the item.
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !pattern.test(lines[i]))
          item.push(lines[i++].trim());
        list.append(el("li", renderInline(item.join("\n"))));
      }
      fragment.append(list);
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(QUOTE.exec(lines[i++])[1]);
      fragment.append(el("blockquote", [renderMarkdown(body.join("\n"))]));
      continue;
    }
    const paragraph = [];
    while (
      i < lines.length &&
      lines[i].trim() &&
      !FENCE.test(lines[i]) &&
      !HEADING.test(lines[i]) &&
      !BULLET.test(lines[i]) &&
      !NUMBERED.test(lines[i]) &&
      !QUOTE.test(lines[i])
    )
      paragraph.push(lines[i++]);
    fragment.append(el("p", renderInline(paragraph.join("\n"))));
  }
  return fragment;
}
