// /api/worklist: the scheduled exams modalities fetch (MWL), typed as the server's models
// (openpacs.worklist.spec.ItemSpec and web/api/worklist.py).
import { api } from './client'

export const STATUSES = ['SCHEDULED', 'IN PROGRESS', 'COMPLETED', 'DISCONTINUED'] as const
export type Status = (typeof STATUSES)[number]
export const PRIORITIES = ['STAT', 'HIGH', 'ROUTINE', 'MEDIUM', 'LOW'] as const
export type Priority = (typeof PRIORITIES)[number]

export interface Code {
  value: string
  scheme: string
  meaning: string
}

export interface Step {
  id: string | null
  modality: string
  station_ae_titles: string[]
  station_name: string | null
  start_date: string // YYYYMMDD
  start_time: string | null // HHMM[SS]
  description: string | null
  performing_physician: string | null
  location: string | null
  protocol_codes: Code[]
  attributes?: Record<string, unknown>
}

export interface ItemSpec {
  patient_id: string
  issuer_of_patient_id: string | null
  patient_name: string | null // PN groups: alphabetic=ideographic=phonetic
  patient_birth_date: string | null
  patient_sex: 'M' | 'F' | 'O' | null
  patient_age: string | null
  patient_weight: string | null
  other_patient_ids: string[]
  admission_id: string | null
  current_patient_location: string | null
  accession_number: string | null
  referring_physician: string | null
  requesting_physician: string | null
  reason_for_procedure: string | null
  requested_procedure_id: string | null
  requested_procedure_description: string | null
  requested_procedure_codes: Code[]
  priority: Priority | null
  study_instance_uid: string | null
  status: Status
  step: Step
  attributes?: Record<string, unknown>
}

export interface Performed {
  sop_instance_uid: string
  status: string
  calling_ae: string | null
  series: Record<string, unknown>[]
  created_at: string
  updated_at: string
}

export interface Item extends ItemSpec {
  id: number
  study_instance_uid: string
  created_at: string
  updated_at: string
  performed: Performed[]
}

export interface ItemPage {
  total: number
  items: Item[]
}

export interface ItemSearch {
  patient_id?: string
  patient_name?: string
  accession_number?: string
  modality?: string
  station_ae_title?: string
  date_from?: string // YYYYMMDD
  date_to?: string
  status?: string
  offset?: number
  limit?: number
}

export function searchItems(search: ItemSearch): Promise<ItemPage> {
  return api.get<ItemPage>('/api/worklist', { ...search })
}

export function getItem(id: number): Promise<Item> {
  return api.get<Item>(`/api/worklist/${id}`)
}

export function addItem(spec: ItemSpec): Promise<Item> {
  return api.post<Item>('/api/worklist', spec)
}

export function replaceItem(id: number, spec: ItemSpec): Promise<Item> {
  return api.put<Item>(`/api/worklist/${id}`, spec)
}

export function deleteItem(id: number): Promise<void> {
  return api.delete<void>(`/api/worklist/${id}`)
}

/** The fields PUT takes: the server refuses any other (id, timestamps, performed steps), and the
 * copy is the form's own to edit. */
export function specOf(item: Item): ItemSpec {
  const { id, created_at, updated_at, performed, ...spec } = item
  return JSON.parse(JSON.stringify(spec)) as ItemSpec
}
