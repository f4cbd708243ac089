// POST /api/uploads: DICOM files (and ZIPs of them) stored through the ingest path, each with
// its own result (web/api/uploads.py). Sent as multipart/form-data, so not through api.post.
import { ApiError, CSRF_COOKIE, readCookie } from './client'
import { serverUrl } from '../base'

export type UploadOutcome = 'stored' | 'duplicate' | 'overwritten' | 'rejected'

export interface UploadedFile {
  name: string
  outcome: UploadOutcome
  reason: string | null
  study: string | null
  sop_instance_uid: string | null
}

export interface UploadResult {
  stored: number
  duplicates: number
  rejected: number
  files: UploadedFile[]
  /** Why the upload stopped early, if it did. */
  detail: string | null
}

/** Upload the files; the server's answer, also when it stopped early (413, 400 with files). */
export async function uploadFiles(files: File[]): Promise<UploadResult> {
  const form = new FormData()
  for (const file of files) form.append('files', file, file.name)
  const headers: Record<string, string> = { Accept: 'application/json', 'X-Requested-With': 'openpacs-console' }
  const token = readCookie(CSRF_COOKIE)
  if (token) headers['X-CSRF-Token'] = token
  const response = await fetch(serverUrl('/api/uploads'), {
    method: 'POST',
    headers,
    body: form,
    credentials: 'same-origin',
  })
  let body: unknown = null
  try {
    body = await response.json()
  } catch {
    // not JSON: the status says enough
  }
  if (body && typeof body === 'object' && 'files' in body) return body as UploadResult
  const detail = body && typeof body === 'object' && 'detail' in body ? String((body as { detail: unknown }).detail) : ''
  throw new ApiError(response.status, detail || response.statusText)
}
