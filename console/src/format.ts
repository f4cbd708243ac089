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
