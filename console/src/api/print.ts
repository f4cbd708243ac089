// /api/print/jobs: what modalities printed to the Print SCP, each film as PNG and PDF
// (web/api/print.py).
import { api } from './client'
import type { DicomJson } from './nodes'
import type { Job } from './jobs'

export const PRINT_STATES = ['received', 'printing', 'printed', 'forwarded', 'failed'] as const
export type PrintState = (typeof PRINT_STATES)[number]

export interface PrintJob {
  id: number
  calling_ae: string
  called_ae: string
  film_session_uid: string
  colour: boolean
  state: PrintState
  reason: string | null
  film_count: number
  attributes: DicomJson // the film session
  created_at: string
  updated_at: string
}

export interface Film {
  number: number
  film_box_uid: string
  width: number
  height: number
  study_instance_uid: string
  series_instance_uid: string
  sop_instance_uid: string // the Secondary Capture kept in the archive
  png_url: string
  attributes: DicomJson // the film box
  image_boxes: { position: number; uid: string; file: string | null }[]
  annotations: { position: number; text: string }[]
  created_at: string
}

export interface PrintJobDetail extends PrintJob {
  films: Film[]
}

export interface PrintJobPage {
  total: number
  items: PrintJob[]
}

export interface PrintSearch {
  calling_ae?: string
  since?: string // ISO 8601
  until?: string
  state?: string
  offset?: number
  limit?: number
}

const path = (id: number) => `/api/print/jobs/${id}`

export function searchPrintJobs(search: PrintSearch): Promise<PrintJobPage> {
  return api.get<PrintJobPage>('/api/print/jobs', { ...search })
}

export function getPrintJob(id: number): Promise<PrintJobDetail> {
  return api.get<PrintJobDetail>(path(id))
}

export function deletePrintJob(id: number): Promise<void> {
  return api.delete<void>(path(id))
}

/** Queue printing the job's films on a registered printer node; follow the returned job. */
/** composed: each film as composed here, one image per film; original: the modality's own
 * film box and images, laid out by the printer. */
export type PrintLayout = 'composed' | 'original'

export function printOn(id: number, node: string, layout: PrintLayout = 'composed'): Promise<Job> {
  return api.post<Job>(`${path(id)}/print`, { node, layout })
}

/** The film as PNG, its longest side capped at `size` pixels when given. */
export function filmPng(film: Film, size?: number): string {
  return size ? `${film.png_url}?size=${size}` : film.png_url
}

export function filmPdf(id: number, film: Film): string {
  return `${path(id)}/films/${film.number}.pdf`
}
