// POST /api/uploads: DICOM files and ZIPs into the archive, one result per file
// (web/api/uploads.py). Sent with XMLHttpRequest, the one browser API that reports upload
// progress; headers as api/client.ts sends them.
import { CSRF_COOKIE, ApiError, followAuth, readCookie } from './client'
import { serverUrl } from '../base'

export type Outcome = 'stored' | 'duplicate' | 'overwritten' | 'rejected'

export interface FileResult {
  name: string
  outcome: Outcome
  reason: string | null
  study: string | null
  sop_instance_uid: string | null
}

export interface UploadReport {
  stored: number
  duplicates: number
  rejected: number
  files: FileResult[]
  /** Why the upload stopped early (too large, cut off), if it did. */
  detail: string | null
}

/** A file to send and the name it goes by (its path in a dropped folder). */
export interface Upload {
  file: File
  name: string
}

/** Send the files in one multipart body; `progress` gets the fraction sent (0..1). A 413 or 400
 * that still lists files (some were stored before the body stopped) resolves with them. */
export function uploadFiles(files: Upload[], progress?: (sent: number) => void): Promise<UploadReport> {
  const form = new FormData()
  for (const one of files) form.append('file', one.file, one.name)
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', serverUrl('/api/uploads'))
    xhr.setRequestHeader('Accept', 'application/json')
    xhr.setRequestHeader('X-Requested-With', 'openpacs-console')
    const token = readCookie(CSRF_COOKIE)
    if (token) xhr.setRequestHeader('X-CSRF-Token', token)
    xhr.upload.onprogress = (event) => {
      if (progress && event.lengthComputable && event.total) progress(event.loaded / event.total)
    }
    xhr.onload = () => {
      let body: unknown = null
      try {
        body = JSON.parse(xhr.responseText)
      } catch {
        // not JSON: the status says enough
      }
      if (body && typeof body === 'object' && 'files' in body) {
        resolve(body as UploadReport)
        return
      }
      const detail = body && typeof body === 'object' && 'detail' in body ? String((body as { detail: unknown }).detail) : ''
      followAuth(xhr.status, detail)
      reject(new ApiError(xhr.status, detail || xhr.statusText))
    }
    xhr.onerror = () => reject(new TypeError('network'))
    xhr.send(form)
  })
}
