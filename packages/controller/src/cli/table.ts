// Plain-text tables and colour for the `portico` CLI: columns aligned on the
// visible width (escape codes do not count), colour only when asked for.

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

export type Colour = 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'cyan';
const CODES: Record<Colour, string> = { bold: '1', dim: '2', red: '31', green: '32', yellow: '33', cyan: '36' };

export interface Painter {
  (colour: Colour, text: string): string;
  readonly enabled: boolean;
}

export function painter(enabled: boolean): Painter {
  const p = (colour: Colour, text: string): string => (enabled && text !== '' ? `\x1b[${CODES[colour]}m${text}\x1b[0m` : text);
  return Object.assign(p, { enabled });
}

/** Width as a terminal shows it: without escape codes. */
export function visibleWidth(s: string): number {
  return [...s.replace(ANSI, '')].length;
}

/** Columns separated by three spaces, padded to the widest cell; trailing spaces trimmed. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], paint: Painter = painter(false)): string {
  const widths = headers.map((h, i) => Math.max(visibleWidth(h), ...rows.map((r) => visibleWidth(r[i] ?? ''))));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visibleWidth(c)))).join('   ').trimEnd();
  return [paint('bold', line(headers)), ...rows.map(line)].join('\n');
}
