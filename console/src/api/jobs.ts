// /api/jobs: long work (send, retrieve) queued on the server and followed here (web/api/jobs.py).
import { api } from './client'

export type JobState = 'queued' | 'running' | 'succeeded' | 'partly_failed' | 'failed' | 'cancelled'
export const FINISHED: readonly JobState[] = ['succeeded', 'partly_failed', 'failed', 'cancelled']

export interface Job {
  id: number
  kind: string
  state: JobState
  parameters: Record<string, unknown>
  total: number
  done: number
  failed: number
  attempts: number
  next_attempt_at: string | null
  error: string | null
  cancel_requested: boolean
  created_at: string
  started_at: string | null
  finished_at: string | null
}

export interface JobDetail extends Job {
  failures: { item: string; reason: string; at: string }[]
  /** Store jobs: SOP Instance UIDs the node has stored (as of the job's last checkpoint). */
  sent: string[]
}

/** What to send to a node: stored studies, series or instances. */
export interface Send {
  node: string
  studies?: string[]
  series?: string[]
  instances?: string[]
}

/** Queue a C-STORE of stored studies, series, instances to a node. */
export function sendToNode(what: Send): Promise<Job> {
  return api.post<Job>('/api/jobs/store', what)
}

/** Newest first. */
export function listJobs(query: { kind?: string; state?: JobState; limit?: number; offset?: number }): Promise<Job[]> {
  return api.get<Job[]>('/api/jobs', { ...query })
}

/** What to retrieve from a node: studies, or series of one study. */
export interface Retrieve {
  node: string
  studies?: string[]
  series?: string[]
}

export type RetrieveMethod = 'move' | 'get'

/** C-MOVE (the node sends to our Store SCP) or C-GET (we fetch on one association). */
export function retrieve(method: RetrieveMethod, what: Retrieve): Promise<Job> {
  return api.post<Job>(`/api/jobs/${method}`, what)
}

export function getJob(id: number): Promise<JobDetail> {
  return api.get<JobDetail>(`/api/jobs/${id}`)
}

export function cancelJob(id: number): Promise<Job> {
  return api.post<Job>(`/api/jobs/${id}/cancel`)
}

export function retryJob(id: number): Promise<Job> {
  return api.post<Job>(`/api/jobs/${id}/retry`)
}
