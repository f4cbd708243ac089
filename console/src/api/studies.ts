// GET /api/studies and /api/studies/{uid}/series, typed as the server's response models.
import { api } from './client'
import { serverUrl } from '../base'

export interface Study {
  study_instance_uid: string
  patient_id: string | null
  patient_name: string | null
  patient_sex: string | null
  patient_birth_date: string | null
  study_date: string | null
  study_time: string | null
  accession_number: string | null
  study_description: string | null
  referring_physician_name: string | null
  modalities: string[]
  number_of_series: number | null
  number_of_instances: number | null
}

export interface StudyPage {
  total: number
  items: Study[]
}

export interface Series {
  series_instance_uid: string
  series_number: number | null
  modality: string | null
  series_description: string | null
  body_part_examined: string | null
  series_date: string | null
  number_of_instances: number | null
  thumbnail_url: string
}

export const SORT_KEYS = ['date', 'name', 'patient_id', 'modality', 'accession', 'instances'] as const
export type SortKey = (typeof SORT_KEYS)[number]

export interface StudySearch {
  patient_id?: string
  patient_name?: string
  accession_number?: string
  modality?: string
  date_from?: string // YYYYMMDD
  date_to?: string
  keyword?: string
  sort?: string // a SortKey, '-' first for descending
  offset?: number
  limit?: number
}

export function searchStudies(search: StudySearch): Promise<StudyPage> {
  return api.get<StudyPage>('/api/studies', { ...search })
}

export function studySeries(studyUid: string): Promise<Series[]> {
  return api.get<Series[]>(`/api/studies/${encodeURIComponent(studyUid)}/series`)
}

export function ohifUrl(studyUid: string): string {
  return serverUrl(`/ohif/viewer?StudyInstanceUIDs=${encodeURIComponent(studyUid)}`)
}
