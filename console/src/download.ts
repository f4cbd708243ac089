// Downloads the server streams (a study's ZIP): the browser saves them straight to disk, never
// through memory. Each goes through a hidden frame, so a refusal (404, 406 burned-in annotation,
// 401) lands in that frame as the server's JSON instead of replacing the console, and is shown
// as a message.
import { ElMessage } from 'element-plus'
import { serverUrl } from './base'
import { i18n } from './i18n'

export function download(path: string): void {
  const frame = document.createElement('iframe')
  frame.style.display = 'none'
  frame.dataset.test = 'download-frame'
  // A saved attachment never fires `load`; a page the server answers instead (an error) does.
  frame.addEventListener('load', () => {
    const text = frame.contentDocument?.body?.textContent?.trim() ?? ''
    if (!text) return
    let detail = text
    try {
      const body: unknown = JSON.parse(text)
      if (body && typeof body === 'object' && 'detail' in body) detail = String((body as { detail: unknown }).detail)
    } catch {
      // not JSON: show the text as it is
    }
    ElMessage.error({ message: i18n.global.t('studyActions.downloadFailed', { detail }), duration: 8000 })
    frame.remove()
  })
  document.body.appendChild(frame)
  frame.src = serverUrl(path)
  // The frame is left for the download to finish; a later page load clears it.
  setTimeout(() => frame.remove(), 10 * 60 * 1000)
}
