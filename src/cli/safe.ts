// Catalog values and error messages reach the terminal: a school named
// "x\r\x1b[2K✔ other up to date" must not rewrite the screen. Every such value
// is escaped before it is printed; the tool's own colours are added after.

/** C0 and C1 control characters, DEL, and the bidirectional overrides that reorder text on screen. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(char: string): string {
  const code = char.charCodeAt(0);
  if (char === "\n") return "\\n";
  if (char === "\r") return "\\r";
  if (char === "\t") return "\\t";
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** One line of text with every control character written as an escape (\x1b, \r, \n). */
export function safe(text: string): string {
  return text.replace(CONTROL, escapeChar);
}

/** Like safe(), but line breaks stay (the tool's own multi-line messages). */
export function safeLines(text: string): string {
  return text.replace(CONTROL_BUT_NEWLINE, escapeChar);
}

/** The first line of a message, escaped. */
export function firstLine(text: string): string {
  return safe(text.split(/\r?\n/, 1)[0] ?? "");
}
