// /api/studies: the study list, a study's series, and the Studies page's actions (edit, remark,
// delete, ZIP and de-identified downloads, Weasis), typed as the server's response models.
import { api, request } from './client'
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
  study_id: string | null
  modalities: string[]
  number_of_series: number | null
  number_of_instances: number | null
  remark: string | null
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

/** OHIF's hanging protocols for the layouts the console offers besides the plain stack. */
export const OHIF_LAYOUTS = { mpr: 'mpr', volume: 'mprAnd3DVolumeViewport' } as const
export type OhifLayout = keyof typeof OHIF_LAYOUTS

export function ohifUrl(studyUid: string, layout?: OhifLayout): string {
  const protocol = layout ? `&hangingprotocolId=${OHIF_LAYOUTS[layout]}` : ''
  return serverUrl(`/ohif/viewer?StudyInstanceUIDs=${encodeURIComponent(studyUid)}${protocol}`)
}

const studyPath = (studyUid: string) => `/api/studies/${encodeURIComponent(studyUid)}`
const seriesPath = (studyUid: string, seriesUid?: string) =>
  seriesUid ? `${studyPath(studyUid)}/series/${encodeURIComponent(seriesUid)}` : studyPath(studyUid)

/** The attributes PATCH may change (openpacs.dicom.edit.EDITABLE). */
export const EDITABLE = [
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'PatientSex',
  'AccessionNumber',
  'StudyDescription',
  'ReferringPhysicianName',
  'StudyDate',
  'StudyTime',
  'StudyID',
] as const
export type Editable = (typeof EDITABLE)[number]

export interface Edited {
  study: string
  instances: number
  old: Record<string, string | null>
  new: Record<string, string>
  /** The files now declare ISO_IR 192 (UTF-8): their old character set could not hold a value. */
  charset_changed: boolean
  /** The Patient ID the study now belongs to, when it changed. */
  moved_to_patient: string | null
}

export interface Deleted {
  study: string
  series: string[]
  instances: number
  size_bytes: number
  study_deleted: boolean
  patient_deleted: boolean
  files_left: string[]
}

/** Change patient and study attributes ('' empties one): every file rewritten, rows too. */
export function editStudy(studyUid: string, changes: Partial<Record<Editable, string>>): Promise<Edited> {
  return request<Edited>('PATCH', studyPath(studyUid), { body: changes })
}

export function setRemark(studyUid: string, remark: string): Promise<{ study: string; remark: string | null }> {
  return api.put(`${studyPath(studyUid)}/remark`, { remark })
}

/** Delete a study, or one of its series (the study goes too with its last series). */
export function deleteStudy(studyUid: string, seriesUid?: string): Promise<Deleted> {
  return api.delete<Deleted>(seriesPath(studyUid, seriesUid))
}

/** The ZIP of a study or series as stored (streamed by the server). */
export function zipUrl(studyUid: string, seriesUid?: string): string {
  return `${seriesPath(studyUid, seriesUid)}/archive.zip`
}

/** PS3.15 Annex E options on top of the Basic Profile (openpacs.dicom.deidentify.Option). */
export const DEIDENTIFY_OPTIONS = [
  'retain-safe-private',
  'retain-uids',
  'retain-device-identity',
  'retain-institution-identity',
  'retain-patient-characteristics',
  'retain-longitudinal-full-dates',
  'retain-longitudinal-modified-dates',
  'clean-descriptors',
] as const
export type DeidentifyOption = (typeof DEIDENTIFY_OPTIONS)[number]

export function deidentifiedUrl(studyUid: string, seriesUid: string | undefined, options: DeidentifyOption[]): string {
  const names = ['basic', ...options].join('+')
  return `${seriesPath(studyUid, seriesUid)}/deidentified.zip?options=${encodeURIComponent(names)}`
}

export interface WeasisLaunch {
  url: string // weasis://?...
  manifest: string
  expires_at: string
}

/** A weasis:// link for the study, carrying a short-lived read-only token. */
export function weasisLaunch(studyUid: string): Promise<WeasisLaunch> {
  return api.get<WeasisLaunch>(`${studyPath(studyUid)}/weasis`)
}
