// Values as the index keeps them (DA as YYYYMMDD), shown the way staff read them.

/** YYYYMMDD → YYYY-MM-DD; anything else as it is; nothing → ''. */
export function formatDate(value: string | null | undefined): string {
  if (!value) return ''
  return /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : value
}

/** HHMMSS(.ffffff) → HH:MM; nothing → ''. */
export function formatTime(value: string | null | undefined): string {
  if (!value) return ''
  return /^\d{4}/.test(value) ? `${value.slice(0, 2)}:${value.slice(2, 4)}` : value
}

/** A byte count as people read it: 1.5 GB, 320 MB, 12 kB. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return ''
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB']
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit += 1
  }
  return `${unit ? value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0) : value} ${units[unit]}`
}

/** An ISO 8601 instant in the browser's local time; nothing → ''. */
export function formatInstant(value: string | null | undefined): string {
  return value ? new Date(value).toLocaleString() : ''
}
