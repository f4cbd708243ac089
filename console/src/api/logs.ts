// /api/logs: each service's daily log files: list, tail and search, live follow (Server-Sent
// Events), download, delete (admin; never today's file). See web/api/logs.py.
import { api } from './client'
import { serverUrl } from '../base'

export interface LogFile {
  name: string
  /** YYYY-MM-DD, the day it covers. */
  date: string
  size: number
  /** Today's file, still being written (cannot be deleted). */
  current: boolean
}

export interface ServiceLogs {
  service: string
  /** Newest first. */
  files: LogFile[]
}

export interface LogPage {
  service: string
  file: string
  /** Oldest first. */
  lines: string[]
  /** Byte offset of the first line: `before` of the page back. */
  start: number
  /** Byte offset after the last whole line: where a follow starts. */
  end: number
  size: number
  /** Earlier lines exist. */
  more: boolean
}

const path = (service: string, file: string) =>
  `/api/logs/${encodeURIComponent(service)}/${encodeURIComponent(file)}`

export function listLogs(): Promise<ServiceLogs[]> {
  return api.get<ServiceLogs[]>('/api/logs')
}

/** The last lines (or those before `before`), only those containing `q` if given. */
export function readLog(
  service: string,
  file: string,
  query: { lines?: number; q?: string; before?: number } = {},
): Promise<LogPage> {
  return api.get<LogPage>(path(service, file), { ...query })
}

/** The SSE stream of new lines from `offset` (an EventSource URL, under the console's base). */
export function followUrl(service: string, file: string, offset: number): string {
  return serverUrl(`${path(service, file)}/follow?offset=${offset}`)
}

export function downloadUrl(service: string, file: string): string {
  return serverUrl(`${path(service, file)}/download`)
}

export function deleteLog(service: string, file: string): Promise<void> {
  return api.delete<void>(path(service, file))
}
