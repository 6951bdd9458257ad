/**
 * A small XML well-formedness check (XML 1.0 §2.1, the parts an SVG uses): one root element,
 * tags nested and matched, attributes quoted and unique, entity references known or numeric,
 * no stray "<" or "&" in text. Returns the problem, or undefined when the document is well formed.
 */
export function xmlProblem(doc: string): string | undefined {
  const name = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const badRef = (text: string): string | undefined => {
    const refs = text.match(/&[^;]*;?/g) ?? [];
    const bad = refs.find((r) => !/^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);$/.test(r));
    return bad ? `bad entity reference "${bad}"` : undefined;
  };
  if (doc.startsWith("<?xml")) {
    const end = doc.indexOf("?>");
    if (end < 0) return "unterminated XML declaration";
    i = end + 2;
  }
  while (i < doc.length) {
    const lt = doc.indexOf("<", i);
    const text = doc.slice(i, lt < 0 ? doc.length : lt);
    if (text.trim() && !stack.length) return `text outside the root element: "${text.trim().slice(0, 40)}"`;
    const r = badRef(text);
    if (r) return r;
    if (lt < 0) break;
    if (doc.startsWith("<!--", lt)) {
      const end = doc.indexOf("-->", lt + 4);
      if (end < 0) return "unterminated comment";
      i = end + 3;
      continue;
    }
    const gt = doc.indexOf(">", lt);
    if (gt < 0) return "unterminated tag";
    let tag = doc.slice(lt + 1, gt);
    if (tag.startsWith("/")) {
      const n = tag.slice(1).trim();
      const open = stack.pop();
      if (open !== n) return `</${n}> closes <${open ?? "nothing"}>`;
      i = gt + 1;
      continue;
    }
    const selfClosing = tag.endsWith("/");
    if (selfClosing) tag = tag.slice(0, -1);
    const m = name.exec(tag);
    if (!m) return `bad tag name in <${tag.slice(0, 20)}>`;
    let rest = tag.slice(m[0].length);
    const seen = new Set<string>();
    while (rest.trim()) {
      const a = /^\s+([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(rest);
      if (!a) return `bad attribute in <${m[0]}>: "${rest.trim().slice(0, 30)}"`;
      if (seen.has(a[1]!)) return `duplicate attribute ${a[1]} in <${m[0]}>`;
      seen.add(a[1]!);
      const r2 = badRef(a[3] ?? a[4] ?? "");
      if (r2) return r2;
      rest = rest.slice(a[0].length);
    }
    if (!stack.length) roots++;
    if (roots > 1) return "more than one root element";
    if (!selfClosing) stack.push(m[0]);
    i = gt + 1;
  }
  if (stack.length) return `unclosed <${stack.join("> <")}>`;
  if (roots !== 1) return "no root element";
  return undefined;
}

/** The character data of every element named `tag`, entities decoded. */
export function texts(doc: string, tag: string): string[] {
  const out: string[] = [];
  for (const m of doc.matchAll(new RegExp(`<${tag}\\b[^>]*>([^<]*)</${tag}>`, "g"))) {
    out.push(
      m[1]!
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'")
        .replace(/&amp;/g, "&"),
    );
  }
  return out;
}
