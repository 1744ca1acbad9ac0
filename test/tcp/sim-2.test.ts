import { SEEDS_PER_FILE, simulateSeeds } from './sim.ts'

simulateSeeds(SEEDS_PER_FILE, SEEDS_PER_FILE)
