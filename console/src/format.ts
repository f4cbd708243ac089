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

/** A size in bytes as people read it: 512 B, 1.5 KiB, 3.2 MiB. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit += 1
  }
  return `${value.toFixed(1)} ${units[unit]}`
}
