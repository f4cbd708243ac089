// GET /api/status: the server's state now (web/api/status.py); the Status page polls it.
import { api } from './client'

export interface ListenerState {
  service: string
  ae_title: string | null
  host: string
  port: number
  /** Switched on in the settings; one switched off is expected to be down. */
  enabled: boolean
  up: boolean
  detail: string
}

export interface Association {
  id: number
  service: string
  calling_ae: string
  called_ae: string
  peer: string
  accepted: boolean
  started_at: string
  ended_at: string | null
  requests: number
  outcome: string | null
}

export interface AssociationCounts {
  service: string
  open: number
  open_in_receivers: number
  accepted: number
  rejected: number
}

export interface ProcessState {
  pid: number
  role: string
  cpu_percent: number
  memory_bytes: number
  threads: number
  uptime_seconds: number
}

export interface Problem {
  at: string
  level: string
  service: string
  message: string
}

export interface ServerStatus {
  checked_at: string
  uptime_seconds: number
  listeners: ListenerState[]
  associations: { counts: AssociationCounts[]; open: Association[]; recent: Association[] }
  received: { last_minute: number; last_hour: number }
  storage: { root: string; stored_bytes: number; free_bytes: number; total_bytes: number }
  index: { database: string; database_bytes: number; tables_bytes: number | null }
  processes: ProcessState[]
  machine: { cpu_count: number; cpu_percent: number; memory_total_bytes: number; memory_available_bytes: number }
  problems: Problem[]
}

export function getStatus(): Promise<ServerStatus> {
  return api.get<ServerStatus>('/api/status')
}
