// The one way the console talks to the server: JSON over fetch, same origin, cookie session.
//
// Every request says it comes from the console (X-Requested-With), so a 401 carries no Basic
// challenge and the browser shows no password dialog; state-changing requests carry the CSRF
// token the server set in a cookie readable by scripts. A 401 sends the user to the sign-in
// page, a 403 "password change required" to the password change page.

import { serverUrl } from '../base'

export const CSRF_COOKIE = 'openpacs_csrf'
export const PASSWORD_CHANGE_REQUIRED = 'password change required'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    /** Seconds the server asks us to wait (429 Retry-After), if it said. */
    readonly retryAfter?: number,
    /** A 422's message per field ('step.modality', 'storescp.port'), to show beside it. */
    readonly fields: Record<string, string> = {},
  ) {
    super(detail || `HTTP ${status}`)
  }
}

export type Redirect = (to: 'sign-in' | 'change-password') => void

let redirect: Redirect = () => undefined

/** Where the client sends the user on 401 / 403 "password change required" (set by main.ts). */
export function onAuthRedirect(handler: Redirect): void {
  redirect = handler
}

/** Send the user where a refused request says (sign-in, password change); also for requests
 * made without `request` (uploads, which need XMLHttpRequest for their progress). */
export function followAuth(status: number, detail: string): void {
  if (status === 401) redirect('sign-in')
  if (status === 403 && detail === PASSWORD_CHANGE_REQUIRED) redirect('change-password')
}

export function readCookie(name: string): string | undefined {
  for (const part of document.cookie.split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) return decodeURIComponent(value.join('='))
  }
  return undefined
}

type Query = Record<string, string | number | undefined | null>

export interface RequestOptions {
  query?: Query
  body?: unknown
  /** Sign-in and "who am I" answer 401 as a result, not as a reason to leave the page. */
  quiet401?: boolean
}

export function withQuery(path: string, query?: Query): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.append(key, String(value))
  }
  const text = params.toString()
  return text ? `${path}?${text}` : path
}

interface Problem {
  detail: string
  fields: Record<string, string>
}

// A field error as FastAPI ({loc: ['body', ...], msg}) or the settings API ({key, message})
// words it.
type FieldError = { loc?: unknown[]; msg?: string; key?: string; message?: string }

async function problemOf(response: Response): Promise<Problem> {
  try {
    const body: unknown = await response.json()
    if (body && typeof body === 'object' && 'detail' in body) {
      const detail = (body as { detail: unknown }).detail
      if (typeof detail === 'string') return { detail, fields: {} }
      if (Array.isArray(detail)) {
        const fields: Record<string, string> = {}
        for (const item of detail as FieldError[]) {
          const key = item.key ?? item.loc?.slice(1).join('.') ?? ''
          // pydantic prefixes a validator's own message with "Value error, "
          const message = (item.message ?? item.msg ?? '').replace(/^Value error, /, '')
          fields[key] = fields[key] ? `${fields[key]}; ${message}` : message
        }
        const text = Object.entries(fields).map(([key, message]) => [key, message].filter(Boolean).join(': '))
        return { detail: text.join('; '), fields }
      }
    }
  } catch {
    // not JSON: the status says enough
  }
  return { detail: response.statusText, fields: {} }
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = {
    Accept: 'application/json',
    'X-Requested-With': 'openpacs-console',
  }
  if (!['GET', 'HEAD'].includes(method)) {
    const token = readCookie(CSRF_COOKIE)
    if (token) headers['X-CSRF-Token'] = token
  }
  let body: string | undefined
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(options.body)
  }
  const response = await fetch(serverUrl(withQuery(path, options.query)), {
    method,
    headers,
    body,
    credentials: 'same-origin',
  })
  if (!response.ok) {
    const { detail, fields } = await problemOf(response)
    if (!(response.status === 401 && options.quiet401)) followAuth(response.status, detail)
    const wait = Number(response.headers.get('Retry-After'))
    throw new ApiError(response.status, detail, Number.isFinite(wait) && wait > 0 ? wait : undefined, fields)
  }
  if (response.status === 204) return undefined as T
  return (await response.json()) as T
}

export const api = {
  get: <T>(path: string, query?: Query) => request<T>('GET', path, { query }),
  post: <T>(path: string, body?: unknown, options: RequestOptions = {}) =>
    request<T>('POST', path, { ...options, body }),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, { body }),
  delete: <T>(path: string) => request<T>('DELETE', path),
}
