// A small terminal emulator for the ops-view tests: it replays what the CLI
// wrote to a pseudo-terminal (text, CR, LF, cursor up/column, erase line,
// colours ignored) and returns the rows the terminal ends up showing,
// scrollback included, so that a test can read "the screen" and count its
// lines the way a person at the terminal would.

/** The rows a terminal shows after `raw` was written to it (trailing blank rows dropped). */
export function screenOf(raw: string, options: { upTo?: number } = {}): string[] {
  const text = options.upTo === undefined ? raw : raw.slice(0, options.upTo);
  const rows: string[][] = [[]];
  let row = 0;
  let col = 0;
  const at = (r: number): string[] => {
    while (rows.length <= r) rows.push([]);
    return rows[r] as string[];
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === "\u001b") {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: a terminal's escape sequences are what this reads
      const csi = /^\u001b\[([?0-9;]*)([A-Za-z])/.exec(text.slice(i, i + 32));
      // biome-ignore lint/suspicious/noControlCharactersInRegex: a terminal's escape sequences are what this reads
      const osc = /^\u001b\][^\u0007]*\u0007/.exec(text.slice(i, i + 256));
      if (csi) {
        i += csi[0].length - 1;
        const params = csi[1] ?? "";
        const n = Number(params.split(";")[0] || "1");
        switch (csi[2]) {
          case "A":
            row = Math.max(0, row - n);
            break;
          case "B":
            row += n;
            break;
          case "C":
            col += n;
            break;
          case "D":
            col = Math.max(0, col - n);
            break;
          case "G":
            col = n - 1;
            break;
          case "K": {
            const line = at(row);
            const mode = Number(params || "0");
            if (mode === 0) line.length = Math.min(line.length, col);
            else if (mode === 1) for (let k = 0; k <= col && k < line.length; k++) line[k] = " ";
            else line.length = 0;
            break;
          }
          default:
            break; // colours, cursor show/hide, synchronized output: nothing on the screen
        }
      } else if (osc) {
        i += osc[0].length - 1;
      }
      continue;
    }
    if (ch === "\r") {
      col = 0;
      continue;
    }
    if (ch === "\n") {
      row++;
      col = 0;
      at(row);
      continue;
    }
    const line = at(row);
    while (line.length < col) line.push(" ");
    line[col] = ch;
    col++;
  }
  const out = rows.map((r) => r.join("").replace(/\s+$/, ""));
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  return out;
}
